"""One KV suite run against every backend: LocalKV (SQLite) and CloudflareKV (against the fake REST API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.cloudflare.kv import CloudflareKV
from sync.errors import InvalidKey
from sync.kv import KV, LocalKV, decode_pointer, encode_pointer, pointer_key
from tests.fakes.cf_kv_server import CloudflareKVServer
from tests.integration.sync.support import ManualClock


@pytest.fixture(params=["local", "cloudflare"])
def kv(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[KV]:
    """Each backend, with expiry driven by the test's clock."""
    if request.param == "local":
        local = LocalKV(tmp_path / "kv.db", clock=clock)
        yield local
        local.close()
    else:
        server: CloudflareKVServer = request.getfixturevalue("kv_server")
        server.write_gap_s = 0.0  # the per-key rate limit has its own test; here we test semantics
        remote = CloudflareKV(server.account_id, server.namespace_id, server.token, base_url=server.base_url)
        yield remote
        remote.close()


def test_put_get_roundtrip_bytes(kv: KV) -> None:
    kv.put("alpha", b"\x00\x01binary\xff")
    assert kv.get("alpha") == b"\x00\x01binary\xff"


def test_missing_key_reads_none(kv: KV) -> None:
    assert kv.get("nope") is None


def test_put_replaces(kv: KV) -> None:
    kv.put("k", b"one")
    kv.put("k", b"two")
    assert kv.get("k") == b"two"


def test_delete_and_delete_missing(kv: KV) -> None:
    kv.put("k", b"v")
    kv.delete("k")
    assert kv.get("k") is None
    kv.delete("k")  # already gone: still fine


def test_ttl_expiry_makes_key_absent(kv: KV, clock: ManualClock) -> None:
    kv.put("short", b"v", ttl_seconds=60)
    kv.put("forever", b"v")
    assert kv.get("short") == b"v"
    clock.advance(61)
    assert kv.get("short") is None
    assert kv.get("forever") == b"v"
    assert kv.keys() == ["forever"]


@pytest.mark.parametrize("ttl", [0, 59, -5, 1.5, True])
def test_ttl_below_minimum_is_refused(kv: KV, ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        kv.put("k", b"v", ttl_seconds=ttl)
    assert kv.get("k") is None


@pytest.mark.parametrize("key", ["", ".", "..", "x" * 513])
def test_bad_keys_are_refused(kv: KV, key: str) -> None:
    with pytest.raises(InvalidKey):
        kv.put(key, b"v")
    with pytest.raises(ValueError):
        kv.get(key)


def test_keys_with_prefix_sorted(kv: KV) -> None:
    for key in ["u1:p2", "u1:p1", "u2:p1", "other"]:
        kv.put(key, b"v")
    assert kv.keys("u1:") == ["u1:p1", "u1:p2"]
    assert kv.keys() == ["other", "u1:p1", "u1:p2", "u2:p1"]


def test_awkward_keys_roundtrip(kv: KV) -> None:
    awkward = ["a/b/c", "sp ace", "pct%2F", "q?x=1&y#z", "ünï:cödé", "x" * 512]
    for i, key in enumerate(awkward):
        kv.put(key, str(i).encode())
    for i, key in enumerate(awkward):
        assert kv.get(key) == str(i).encode(), key
    assert sorted(awkward) == kv.keys()


def test_pointer_roundtrip(kv: KV) -> None:
    key = pointer_key("user_1", "proj-9")
    assert key == "user_1:proj-9"
    kv.put(key, encode_pointer("01J0ABC", "https://x.pages.dev", 1_700_000_000_000), ttl_seconds=90 * 86400)
    raw = kv.get(key)
    assert raw is not None
    assert decode_pointer(raw) == {
        "latestVersionId": "01J0ABC",
        "previewUrl": "https://x.pages.dev",
        "timestamp": 1_700_000_000_000,
    }
