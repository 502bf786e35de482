"""CloudflareKV against the fake Workers KV API: wire format, auth, rate limits and 5xx handling."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sync.cloudflare.kv import CloudflareKV
from sync.errors import RemoteError
from tests.fakes.cf_kv_server import CloudflareKVServer


def client(server: CloudflareKVServer, **kw: object) -> CloudflareKV:
    return CloudflareKV(server.account_id, server.namespace_id, server.token, base_url=server.base_url, **kw)  # type: ignore[arg-type]


def test_key_is_percent_encoded_on_the_wire(kv_server: CloudflareKVServer) -> None:
    kv = client(kv_server)
    kv.put("user/1:proj 2", b"v", ttl_seconds=120)
    assert kv_server.live_value("user/1:proj 2") == b"v"
    assert ("PUT", "user/1:proj 2", 200) in kv_server.requests


def test_wrong_token_is_a_non_retryable_error_without_the_token(kv_server: CloudflareKVServer) -> None:
    kv = CloudflareKV(kv_server.account_id, kv_server.namespace_id, "wrong-secret", base_url=kv_server.base_url)
    with pytest.raises(RemoteError) as info:
        kv.put("k", b"v")
    assert info.value.retryable is False
    assert info.value.status == 401
    assert "wrong-secret" not in str(info.value) and "wrong-secret" not in repr(kv)


def test_unknown_namespace_is_an_error(kv_server: CloudflareKVServer) -> None:
    kv = CloudflareKV(kv_server.account_id, "other-ns", kv_server.token, base_url=kv_server.base_url)
    with pytest.raises(RemoteError) as info:
        kv.put("k", b"v")
    assert info.value.status == 404 and not info.value.retryable


def test_server_rejects_short_ttl_even_from_a_raw_client(kv_server: CloudflareKVServer) -> None:
    import httpx

    url = (
        f"{kv_server.base_url}/accounts/{kv_server.account_id}/storage/kv/namespaces/"
        f"{kv_server.namespace_id}/values/k?expiration_ttl=30"
    )
    resp = httpx.put(url, content=b"v", headers={"Authorization": f"Bearer {kv_server.token}"})
    assert resp.status_code == 400
    assert resp.json()["success"] is False


def test_second_write_within_a_second_gets_429_then_succeeds(kv_server: CloudflareKVServer) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    kv = client(kv_server, sleep=sleep)
    kv.put("hot", b"1")
    kv.put("hot", b"2")  # the fake answers 429 + Retry-After: 1, the client waits and retries
    assert kv_server.live_value("hot") == b"2"
    statuses = [s for (m, k, s) in kv_server.requests if m == "PUT" and k == "hot"]
    assert statuses[:2] == [200, 429] and statuses[-1] == 200
    assert sleeps and sleeps[0] == 1.0  # honoured Retry-After


def test_429_beyond_the_retry_budget_raises_retryable(kv_server: CloudflareKVServer) -> None:
    kv = client(kv_server, max_retries=0)
    kv.put("hot", b"1")
    with pytest.raises(RemoteError) as info:
        kv.put("hot", b"2")
    assert info.value.retryable and info.value.status == 429 and info.value.retry_after == 1.0
    assert kv_server.live_value("hot") == b"1"


def test_5xx_is_retried_with_backoff(kv_server: CloudflareKVServer) -> None:
    kv = client(kv_server, backoff_s=0.01)
    kv_server.fail_next(2, status=503)
    kv.put("k", b"v")
    assert kv_server.live_value("k") == b"v"
    assert [s for (m, _, s) in kv_server.requests] == [503, 503, 200]


def test_5xx_for_longer_than_the_budget_is_retryable_error(kv_server: CloudflareKVServer) -> None:
    kv = client(kv_server, backoff_s=0.01, max_retries=2)
    kv_server.fail_for(30, status=502)
    with pytest.raises(RemoteError) as info:
        kv.get("k")
    assert info.value.retryable and info.value.status == 502


def test_connection_refused_is_retryable() -> None:
    from tests.support import free_port

    kv = CloudflareKV(
        "a", "n", "t", base_url=f"http://127.0.0.1:{free_port()}/client/v4", max_retries=1, backoff_s=0.01
    )
    with pytest.raises(RemoteError) as info:
        kv.get("k")
    assert info.value.retryable


def test_listing_follows_the_cursor(kv_server: CloudflareKVServer) -> None:
    kv_server.write_gap_s = 0.0
    kv = client(kv_server)
    for i in range(1234):
        kv_server.store[f"k{i:05d}"] = (b"v", None)
    names = kv.keys("k")
    assert len(names) == 1234 and names == sorted(names)
    assert sum(1 for (m, k, _) in kv_server.requests if k.endswith("/keys")) == 2


@pytest.mark.parametrize("field", ["account_id", "namespace_id", "api_token"])
def test_missing_settings_are_refused(field: str) -> None:
    args: dict[str, Any] = {"account_id": "a", "namespace_id": "n", "api_token": "t", field: ""}
    with pytest.raises(ValueError, match=field):
        CloudflareKV(**args)
