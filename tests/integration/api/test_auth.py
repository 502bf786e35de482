"""API authentication: v2 signatures bound to method, path, query, timestamp and body; replays; the seed's body-only
form where it is allowed; scoped read tokens; junk never costing a valid caller anything."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from daemon.core import nonces
from daemon.core.db import RateEvent, database
from daemon.core.signing import mint_token
from tests.integration.api.conftest import add_version, token_for
from tests.support import TEST_SECRET, ApiClient, body_only_headers, signed_headers

NEW = "/build-preview-for-new-project"


def new_body(**kw: Any) -> bytes:
    return json.dumps({"userId": "u1", "projectId": "p1", "prompt": "A bakery site", **kw}).encode()


def code(r: Any) -> str:
    return str(r.json()["error"]["code"])


# -- signature v2: what it covers ---------------------------------------------------------------------------------
def test_signature_reused_on_another_route_is_refused(api: ApiClient) -> None:
    vid = add_version(api.daemon, "alice", "p1")
    captured = signed_headers("GET", "/status")  # what an eavesdropper saw on the status call
    for method, path in (("POST", f"/versions/{vid}/pin"), ("POST", "/projects/alice/p1/undo"),
                         ("POST", "/projects/alice/p1/redo"), ("POST", "/ops/cleanup"), ("GET", "/ops/sync/verify")):
        r = api.client.request(method, path, headers=captured)
        assert r.status_code == 401 and code(r) == "signature_invalid", (method, path, r.text)
    assert api.client.get("/status", headers=captured).status_code == 200  # it was valid where it was made


def test_signature_reused_with_another_method_is_refused(api: ApiClient) -> None:
    headers = signed_headers("GET", "/ops/cleanup")
    r = api.client.post("/ops/cleanup", headers=headers)
    assert r.status_code == 401 and code(r) == "signature_invalid"


def test_signature_reused_on_another_query_is_refused(api: ApiClient) -> None:
    dry = signed_headers("POST", "/ops/cleanup?dryRun=1")
    for other in ("/ops/cleanup", "/ops/cleanup?dryRun=0", "/ops/cleanup?dryRun=1&x=1"):
        r = api.client.post(other, headers=dry)
        assert r.status_code == 401 and code(r) == "signature_invalid", other
    r = api.client.post("/ops/cleanup?dryRun=1", headers=dry)
    assert r.status_code == 200 and r.json()["dryRun"] is True


@pytest.mark.parametrize("offset", [-301, -3600, 301, 86400])
def test_signature_past_the_skew_is_refused(api: ApiClient, offset: int) -> None:
    ts = str(int(time.time()) + offset)
    r = api.client.get("/status", headers=signed_headers("GET", "/status", ts=ts))
    assert r.status_code == 401 and code(r) == "timestamp_stale"
    # a signature with no timestamp at all (the old status call) would never go stale: it is refused outright
    timeless = api.client.get("/status", headers=body_only_headers(b""))
    assert timeless.status_code == 401 and code(timeless) == "timestamp_missing"


@pytest.mark.parametrize("ts", ["nan", "inf", "1e9", "-5", " 1", "yesterday"])
def test_timestamp_must_be_plain_unix_seconds(api: ApiClient, ts: str) -> None:
    r = api.client.get("/status", headers=signed_headers("GET", "/status", ts=ts))
    assert r.status_code == 401 and code(r) == "timestamp_invalid"


def test_timestamp_is_required_outside_the_seed_routes(api: ApiClient) -> None:
    headers = signed_headers("GET", "/status")
    del headers["x-sheen-timestamp"]
    r = api.client.get("/status", headers=headers)
    assert r.status_code == 401 and code(r) == "timestamp_missing"


def test_body_is_covered(api: ApiClient) -> None:
    r = api.client.post(NEW, content=new_body(projectId="other"), headers=signed_headers("POST", NEW, new_body()))
    assert r.status_code == 401 and code(r) == "signature_invalid"


# -- replays ------------------------------------------------------------------------------------------------------
def test_nonce_replayed_within_the_window_is_refused(api: ApiClient) -> None:
    headers = signed_headers("POST", "/ops/sync")
    assert api.client.post("/ops/sync", headers=headers).status_code == 200
    again = api.client.post("/ops/sync", headers=headers)
    assert again.status_code == 401 and code(again) == "signature_replayed"
    # the same headers with the sha256= prefix or in upper case are the same signature
    headers["x-sheen-signature"] = "sha256=" + headers["x-sheen-signature"].upper()
    assert code(api.client.post("/ops/sync", headers=headers)) == "signature_replayed"


def test_a_replayed_build_request_creates_nothing(api: ApiClient) -> None:
    body = new_body()
    headers = signed_headers("POST", NEW + "?wait=false", body)
    assert api.client.post(NEW + "?wait=false", content=body, headers=headers).status_code == 202
    r = api.client.post(NEW + "?wait=false", content=body, headers=headers)
    assert r.status_code == 401 and code(r) == "signature_replayed"


def test_replay_is_refused_after_a_restart(daemon_factory: Callable[..., Daemon]) -> None:
    d1 = daemon_factory()
    headers = signed_headers("POST", "/ops/sync")
    with TestClient(d1.app) as c:
        assert c.post("/ops/sync", headers=headers).status_code == 200
    d1.close()
    d2 = daemon_factory()
    with TestClient(d2.app) as c:
        r = c.post("/ops/sync", headers=headers)
    assert r.status_code == 401 and code(r) == "signature_replayed"


def test_remembered_signatures_are_pruned_past_the_window(api: ApiClient) -> None:
    now = time.time()
    with database.connection_context():
        assert nonces.remember("a" * 64, now - 10, now=now + nonces.PRUNE_EVERY_S * 2)
        assert nonces.remember("b" * 64, now + 300, now=now + nonces.PRUNE_EVERY_S * 4)  # prunes "a"
        assert nonces.count() == 1
        assert not nonces.remember("b" * 64, now + 300, now=now + nonces.PRUNE_EVERY_S * 4)


# -- the seed's body-only form ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [NEW, "/rebuild-preview", "/generate"])
@pytest.mark.parametrize("raw", [b"", b"{}", b"[]", b"null", b"not json"])
def test_body_only_is_refused_on_empty_or_non_object_bodies(api: ApiClient, path: str, raw: bytes) -> None:
    r = api.client.post(path, content=raw, headers=body_only_headers(raw))
    assert r.status_code == 401 and code(r) == "signature_v2_required", r.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/status"), ("POST", "/ops/cleanup"), ("POST", "/ops/sync"), ("GET", "/ops/sync/verify"),
    ("POST", "/projects/u1/p1/undo"), ("POST", "/projects/u1/p1/restore"), ("POST", "/tokens"),
    ("POST", "/rollback/01ARZ3NDEKTSV4RRFFQ69G5FAV"), ("POST", "/versions/01ARZ3NDEKTSV4RRFFQ69G5FAV/pin"),
    ("GET", "/versions?userId=u1&projectId=p1"), ("GET", "/metrics"),
])
def test_body_only_is_refused_on_ops_and_other_routes(api: ApiClient, method: str, path: str) -> None:
    for raw in (b"", b'{"userId": "u1", "projectId": "p1"}'):
        r = api.client.request(method, path, content=raw, headers=body_only_headers(raw))
        assert r.status_code == 401, (method, path, raw, r.text)
        assert code(r) in ("timestamp_missing", "signature_invalid"), r.text


def test_body_only_is_accepted_on_the_seed_routes(api: ApiClient) -> None:
    body = new_body()
    r = api.client.post(NEW, content=body, headers=body_only_headers(body), params={"wait": "false"})
    assert r.status_code == 202, r.text


def test_body_only_switch_turns_it_off(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"accept_body_only_signatures": False})
    body = new_body()
    with TestClient(d.app) as c:
        r = c.post(NEW, content=body, headers=body_only_headers(body), params={"wait": "false"})
        assert r.status_code == 401 and code(r) == "timestamp_missing"
        ok = c.post(NEW + "?wait=false", content=body, headers=signed_headers("POST", NEW + "?wait=false", body))
        assert ok.status_code == 202


# -- per-user reads -----------------------------------------------------------------------------------------------
def _read_paths(vid: str, project: str = "p1") -> list[str]:
    return [f"/versions?userId=alice&projectId={project}", f"/versions/{vid}", f"/versions/{vid}/log",
            f"/versions/{vid}/diff/{vid}?mode=files", f"/versions/{vid}/screenshot", f"/builds/{vid}/logs"]


def with_token(path: str, token: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}token={token}"


def test_unsigned_reads_of_each_per_user_route_are_401(api: ApiClient) -> None:
    vid = add_version(api.daemon, "alice", "p1", log="alice's build log\n")
    for path in [*_read_paths(vid), "/metrics", "/healthz?detail=1", "/healthz/detail"]:
        r = api.get(path, sign_it=False)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert code(r) == "auth_missing"
        assert "secret prompt" not in r.text and "build log" not in r.text
    # the public reads stay public
    assert api.get("/healthz", sign_it=False).json() == {"ok": True}
    assert api.get("/projects/alice/p1/preview", sign_it=False).status_code == 404  # no preview yet, but no 401


def test_signed_reads_of_each_per_user_route_pass_the_guard(api: ApiClient) -> None:
    vid = add_version(api.daemon, "alice", "p1", log="one\n")
    for path in _read_paths(vid):
        r = api.get(path)
        assert r.status_code not in (401, 403), (path, r.text)


def test_token_for_project_a_cannot_read_project_b(api: ApiClient) -> None:
    a = add_version(api.daemon, "alice", "pa", log="a\n")
    b = add_version(api.daemon, "alice", "pb", log="b\n")
    token = token_for("alice", "pa")
    for path in [*_read_paths(b, "pb"), "/versions?userId=bob&projectId=pa", f"/versions/{a}/diff/{b}"]:
        r = api.get(with_token(path, token), sign_it=False)
        assert r.status_code == 403, (path, r.text)
        assert code(r) == "token_scope" and "b\n" not in r.text
    ok = api.get("/versions", sign_it=False, params={"userId": "alice", "projectId": "pa", "token": token})
    assert ok.status_code == 200 and [v["versionId"] for v in ok.json()["versions"]] == [a]
    assert api.get(f"/versions/{a}/log", sign_it=False, params={"token": token}).text == "a\n"
    bearer = api.get(f"/versions/{a}", sign_it=False, headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200 and bearer.json()["projectId"] == "pa"


def test_expired_and_tampered_tokens_are_refused(api: ApiClient) -> None:
    vid = add_version(api.daemon, "alice", "p1")
    now = int(time.time())
    good = token_for("alice", "p1")
    v, user, project, exp, mac = good.split(".")
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    cases = {
        "token_expired": [mint_token(TEST_SECRET, "alice", "p1", now - 1)],
        "token_invalid": [f"{v}.{user}.{project}.{exp}.{flipped}",  # MAC tampered
                          f"{v}.{user}.p2.{exp}.{mac}",  # project swapped
                          f"{v}.{user}.{project}.{int(exp) + 60}.{mac}",  # expiry pushed back
                          mint_token("not-the-secret", "alice", "p1", now + 60),  # someone else's secret
                          mint_token(TEST_SECRET, "alice", "p1", now + 10 * 86400)],  # past read_token_max_ttl_s
        "token_malformed": ["", "v1", "v2.alice.p1.1.abc", f"{good}.x", f"v1.al ice.p1.{exp}.{mac}",
                            f"v1.alice.p1.-5.{mac}", f"v1.alice.p1.{exp}.{mac.upper()}"],
    }
    for expected, tokens in cases.items():
        for token in tokens:
            r = api.get(f"/versions/{vid}", sign_it=False, headers={"Authorization": f"Bearer {token}"})
            if token == "":
                assert r.status_code == 401 and code(r) == "auth_missing"
                continue
            assert r.status_code == 401, (token, r.text)
            assert code(r) == expected, (token, r.text)
    assert api.get(f"/versions/{vid}", sign_it=False, params={"token": good}).status_code == 200


def test_post_tokens_mints_a_scoped_token(api: ApiClient) -> None:
    vid = add_version(api.daemon, "alice", "p1")
    assert api.post("/tokens", {"userId": "alice", "projectId": "p1"}, sign_it=False).status_code == 401
    r = api.post("/tokens", {"userId": "alice", "projectId": "p1", "ttlSeconds": 10 ** 9})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"].startswith("v1.alice.p1.") and body["userId"] == "alice"
    assert body["expiresAt"] <= time.time() + api.daemon.cfg.server.read_token_max_ttl_s + 1
    assert api.get(f"/versions/{vid}", sign_it=False, params={"token": body["token"]}).status_code == 200
    assert api.post("/tokens", {"userId": "../x", "projectId": "p1"}).status_code == 400


# -- junk before caps ---------------------------------------------------------------------------------------------
def test_200_bad_signature_requests_leave_a_valid_caller_unaffected(api: ApiClient) -> None:
    d: Daemon = api.daemon
    d.cfg.rate_limits.per_ip_per_hour = 5
    stale = str(int(time.time()) - 3600)
    junk: list[dict[str, str]] = [
        signed_headers("POST", NEW, new_body(), secret="guess"),
        {"content-type": "application/json"},
        signed_headers("POST", NEW, new_body(), ts=stale),
        {"x-sheen-signature": "zz", "x-sheen-timestamp": "x"},
    ]
    codes = set()
    for i in range(200):
        r = api.client.post(NEW, content=new_body(), headers=junk[i % len(junk)], params={"wait": "false"})
        codes.add(r.status_code)
        assert "requests per IP" not in r.text  # junk never touches the per-IP cap
    assert codes == {401, 429}  # past [rate_limits] failed_auth_per_ip_per_hour, junk gets 429, never a 5xx
    with database.connection_context():
        assert RateEvent.select().count() == 0  # junk cost no database write
        assert nonces.count() == 0
    # the valid caller on the same address still has its whole per-IP allowance
    for i in range(5):
        r = api.post(NEW, json.loads(new_body(projectId=f"p{i}")), params={"wait": "false"})
        assert r.status_code == 202, r.text
    assert api.post(NEW, json.loads(new_body(projectId="p9")), params={"wait": "false"}).status_code == 429
    # the refusals are visible: their own metric and alert
    fams = d.ops.metrics.render().decode()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in fams.splitlines()
                if line.startswith("previewd_auth_failures_total{"))
    assert total == 200
    d.cfg.alerts.disk_free_min_percent = 0
    assert "api_auth_failures" in {a.name for a in d.ops.alerts.evaluate()}
