"""The HTTP API over a real runtime (SQLite, Huey queue file), worker stopped so builds stay queued."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from daemon.core import versions
from daemon.core.db import ProjectVersion
from tests.support import TEST_SECRET, ApiClient, body_only_headers, in_process_daemon, signed_headers

NEW = "/build-preview-for-new-project"
REBUILD = "/rebuild-preview"


def new_body(**kw: Any) -> dict[str, Any]:
    return {"userId": "u1", "projectId": "p1", "prompt": "A bakery site", **kw}


def deploy_row(version_id: str, url: str = "http://x.localhost/") -> None:
    """Stand in for the worker: mark a queued version deployed the way the pipeline does."""
    ProjectVersion.update(status="deployed", preview_url=url).where(
        ProjectVersion.version_id == version_id).execute()


# -- success paths ----------------------------------------------------------------------------------------
def test_new_project_without_wait_answers_202_with_links(api: Any) -> None:
    r = api.post(NEW, new_body(), params={"wait": "false"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["success"] is True and body["status"] == "queued"
    vid = body["versionId"]
    assert len(vid) == 26
    assert body["statusUrl"].endswith(f"/versions/{vid}")
    assert body["logUrl"].endswith(f"/versions/{vid}/log")
    row = ProjectVersion.get_by_id(vid)
    assert (row.user_id, row.project_id, row.status, row.kind) == ("u1", "p1", "queued", "new")
    assert api.daemon.queue.pending() == 1


def test_wait_past_limit_answers_202(api: Any) -> None:
    api.daemon.cfg.server.wait_timeout_s = 0.2
    r = api.post(NEW, new_body())
    assert r.status_code == 202
    assert r.json()["status"] == "queued"


def test_finished_build_answers_seed_shape(api: Any) -> None:
    vid = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    ProjectVersion.update(status="deployed", preview_url="http://a.localhost/", build_duration_ms=1234).where(
        ProjectVersion.version_id == vid).execute()
    r = api.get(f"/versions/{vid}")
    assert r.status_code == 200 and r.json()["status"] == "deployed"
    from daemon.intake import submit

    status, body = submit.build_answer(api.daemon.rt, ProjectVersion.get_by_id(vid))
    assert status == 200
    assert body == {"success": True, "previewUrl": "http://a.localhost/", "versionId": vid, "buildTime": 1234}


def test_failed_build_answer_has_code_message_and_log_tail(api: Any) -> None:
    vid = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    api.daemon.rt.layout.log_path(vid).write_text("line 1\nerror TS2307: cannot find module\n")
    versions.update(None, vid, status="failed", failure_reason="build_failed", failure_message="pnpm build exited 2")
    from daemon.intake import submit

    _status, body = submit.build_answer(api.daemon.rt, ProjectVersion.get_by_id(vid))
    assert body["success"] is False and body["versionId"] == vid
    assert body["error"] == {"code": "build_failed", "message": "pnpm build exited 2"}
    assert body["logTail"][-1] == "error TS2307: cannot find module"


def test_rebuild_defaults_to_latest_deployed_base(api: Any) -> None:
    v1 = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v1)
    r = api.post(REBUILD, new_body(prompt="darker theme"), params={"wait": "false"})
    assert r.status_code == 202, r.text
    v2 = ProjectVersion.get_by_id(r.json()["versionId"])
    assert v2.parent_version_id == v1 and v2.kind == "rebuild"


def test_rebuild_with_explicit_base(api: Any) -> None:
    v1 = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v1)
    r = api.post(REBUILD, new_body(prompt="x", baseVersionId=v1), params={"wait": "false"})
    assert r.status_code == 202
    assert ProjectVersion.get_by_id(r.json()["versionId"]).parent_version_id == v1


def test_history_newest_first_and_version_lookup(api: Any) -> None:
    v1 = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v1)
    v2 = api.post(REBUILD, new_body(prompt="second"), params={"wait": "false"}).json()["versionId"]
    r = api.get("/versions", params={"userId": "u1", "projectId": "p1"})
    assert r.status_code == 200
    assert [v["versionId"] for v in r.json()["versions"]] == [v2, v1]
    assert api.get(f"/versions/{v2}").json()["parentVersionId"] == v1


def test_preview_pointer_kv_first_then_database(api: Any) -> None:
    assert api.get("/projects/u1/p1/preview").status_code == 404
    v1 = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v1, "http://db.localhost/")
    r = api.get("/projects/u1/p1/preview")
    assert r.status_code == 200
    assert r.json()["latestVersionId"] == v1 and r.json()["previewUrl"] == "http://db.localhost/"
    api.daemon.rt.kv.put("u1:p1", json.dumps({"latestVersionId": "FROMKV", "previewUrl": "http://kv/",
                                               "timestamp": 1}).encode(), None)
    assert api.get("/projects/u1/p1/preview").json()["latestVersionId"] == "FROMKV"


def test_healthz_and_schema(api: Any) -> None:
    assert api.get("/healthz").json() == {"ok": True}
    schema = api.get("/schema/openapi.json").json()
    assert NEW in schema["paths"] and REBUILD in schema["paths"]


# -- HMAC -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [NEW, REBUILD, "/generate"])
def test_hmac_missing_is_401(api: Any, path: str) -> None:
    r = api.post(path, new_body(), sign_it=False)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "signature_missing"


@pytest.mark.parametrize("path", [NEW, REBUILD, "/generate"])
def test_hmac_wrong_is_401(api: Any, path: str) -> None:
    body = json.dumps(new_body()).encode()
    headers = signed_headers("POST", path, body, secret="not-the-secret")
    r = api.client.post(path, content=body, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "signature_invalid"


def test_hmac_over_different_body_is_401(api: Any) -> None:
    signed = json.dumps(new_body()).encode()
    sent = json.dumps(new_body(projectId="other")).encode()
    r = api.client.post(NEW, content=sent, headers=signed_headers("POST", NEW, signed))
    assert r.status_code == 401


def test_hmac_prefix_and_fresh_timestamp_accepted(api: Any) -> None:
    body = json.dumps(new_body()).encode()
    ts = str(int(time.time()))
    headers = signed_headers("POST", NEW + "?wait=false", body, ts=ts)
    headers["x-sheen-signature"] = "sha256=" + headers["x-sheen-signature"]
    r = api.client.post(NEW, content=body, headers=headers, params={"wait": "false"})
    assert r.status_code == 202, r.text


def test_hmac_stale_timestamp_is_401(api: Any) -> None:
    body = json.dumps(new_body()).encode()
    ts = str(int(time.time()) - 600)
    r = api.client.post(NEW, content=body, headers=signed_headers("POST", NEW, body, ts=ts))
    assert r.status_code == 401 and r.json()["error"]["code"] == "timestamp_stale"


def test_hmac_timestamp_must_be_covered(api: Any) -> None:
    body = json.dumps(new_body()).encode()
    headers = body_only_headers(body)  # MAC over the body only
    headers["x-sheen-timestamp"] = str(int(time.time()))
    assert api.client.post(NEW, content=body, headers=headers).status_code == 401


def test_secret_is_the_configured_one(api: Any) -> None:
    assert api.daemon.cfg.secrets.hmac_secret == TEST_SECRET  # from the environment make_config passes
    assert api.client.get("/status", headers=signed_headers("GET", "/status")).status_code == 200
    wrong = signed_headers("GET", "/status", secret=TEST_SECRET + "x")
    assert api.client.get("/status", headers=wrong).status_code == 401


# -- rate caps --------------------------------------------------------------------------------------------
def test_new_projects_per_user_cap(api: Any) -> None:
    api.daemon.cfg.rate_limits.new_projects_per_user_per_hour = 2
    for i in range(2):
        assert api.post(NEW, new_body(projectId=f"p{i}"), params={"wait": "false"}).status_code == 202
    r = api.post(NEW, new_body(projectId="p9"), params={"wait": "false"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["error"]["code"] == "rate_limited"
    # another user is not affected
    assert api.post(NEW, new_body(userId="u2", projectId="p9"), params={"wait": "false"}).status_code == 202


def test_rebuilds_per_project_cap(api: Any) -> None:
    api.daemon.cfg.rate_limits.rebuilds_per_project_per_hour = 2
    v = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v)
    for _ in range(2):
        r = api.post(REBUILD, new_body(prompt="again"), params={"wait": "false"})
        assert r.status_code == 202
        deploy_row(r.json()["versionId"])
    r = api.post(REBUILD, new_body(prompt="again"), params={"wait": "false"})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_per_ip_cap_counts_every_signed_request(api: Any) -> None:
    api.daemon.cfg.rate_limits.per_ip_per_hour = 3
    for _ in range(3):
        api.post(NEW, {"nope": 1})
    r = api.post(NEW, new_body(), params={"wait": "false"})
    assert r.status_code == 429
    assert r.json()["error"]["message"].startswith("rate cap reached: requests per IP")


def test_rate_caps_survive_a_restart(tmp_path: Any) -> None:
    from litestar.testing import TestClient

    caps = {"new_projects_per_user_per_hour": 1}
    with in_process_daemon(tmp_path, rate_limits=caps) as d, TestClient(d.app) as c:
        assert ApiClient(c).post(NEW, new_body(), params={"wait": "false"}).status_code == 202
    with in_process_daemon(tmp_path, rate_limits=caps) as d2, TestClient(d2.app) as c:
        assert ApiClient(c).post(NEW, new_body(projectId="p2"), params={"wait": "false"}).status_code == 429


def test_refused_requests_do_not_use_up_the_project_cap(api: Any) -> None:
    api.daemon.cfg.rate_limits.new_projects_per_user_per_hour = 1
    assert api.post(NEW, new_body(), params={"wait": "false"}).status_code == 202
    # a duplicate (409) must not be what pushes the user over the cap
    assert api.post(NEW, new_body(), params={"wait": "false"}).status_code == 409


# -- dedup ------------------------------------------------------------------------------------------------
def test_second_new_build_for_in_flight_project_is_409_with_version(api: Any) -> None:
    v = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    r = api.post(NEW, new_body(), params={"wait": "false"})
    assert r.status_code == 409
    assert r.json()["error"]["versionId"] == v
    assert api.daemon.queue.pending() == 1


def test_rebuild_while_building_is_409(api: Any) -> None:
    v = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v)
    v2 = api.post(REBUILD, new_body(prompt="a"), params={"wait": "false"}).json()["versionId"]
    r = api.post(REBUILD, new_body(prompt="b"), params={"wait": "false"})
    assert r.status_code == 409 and r.json()["error"]["versionId"] == v2


def test_new_build_for_existing_project_is_409(api: Any) -> None:
    v = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v)
    r = api.post(NEW, new_body(), params={"wait": "false"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "project_exists"


# -- unknown project / base -------------------------------------------------------------------------------
def test_rebuild_unknown_project_is_404(api: Any) -> None:
    r = api.post(REBUILD, new_body(projectId="ghost"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "project_not_found"


def test_rebuild_unknown_base_is_404(api: Any) -> None:
    v = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    deploy_row(v)
    r = api.post(REBUILD, new_body(baseVersionId="01ARZ3NDEKTSV4RRFFQ69G5FAV"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "base_not_found"


def test_unknown_version_is_404(api: Any) -> None:
    assert api.get("/versions/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert api.get("/versions/not-a-ulid").status_code == 404
    assert api.get("/versions/01ARZ3NDEKTSV4RRFFQ69G5FAV/log").status_code == 404


# -- validation -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "field"), [
    ({"projectId": "p1", "prompt": "x"}, "userId"),
    ({"userId": "u1", "prompt": "x"}, "projectId"),
    ({"userId": "u1", "projectId": "p1"}, "prompt"),
    ({"userId": 5, "projectId": "p1", "prompt": "x"}, "userId"),
    ({"userId": "u1", "projectId": ["p"], "prompt": "x"}, "projectId"),
    ({"userId": "u1", "projectId": "p1", "prompt": 3}, "prompt"),
    ({"userId": "../etc", "projectId": "p1", "prompt": "x"}, "userId"),
    ({"userId": "u1", "projectId": "a" * 65, "prompt": "x"}, "projectId"),
    ({"userId": "", "projectId": "p1", "prompt": "x"}, "userId"),
    ({"userId": "u1", "projectId": "p 1", "prompt": "x"}, "projectId"),
    ({"userId": "u1", "projectId": "p1", "prompt": "   "}, "prompt"),
    ({"userId": "u1", "projectId": "p1", "prompt": "x" * 20_001}, "prompt"),
    ({"userId": "u1", "projectId": "p1", "prompt": "x", "framework": "cobol"}, "framework"),
    ({"userId": "u1", "projectId": "p1", "prompt": "x", "framework": 1}, "framework"),
])
def test_new_project_field_validation(api: Any, payload: dict[str, Any], field: str) -> None:
    r = api.post(NEW, payload, params={"wait": "false"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == field
    assert field in err["message"]
    assert ProjectVersion.select().count() == 0


@pytest.mark.parametrize("base", ["v3", "01ARZ3NDEKTSV4RRFFQ69G5FA", 7])
def test_rebuild_base_validation(api: Any, base: Any) -> None:
    r = api.post(REBUILD, new_body(baseVersionId=base))
    assert r.status_code == 400 and r.json()["error"]["field"] == "baseVersionId"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'"str"', b"{", b"\xff\xfe"])
def test_malformed_bodies_are_400(api: Any, raw: bytes) -> None:
    r = api.client.post(NEW, content=raw, headers=signed_headers("POST", NEW, raw))
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_oversized_body_is_413(api: Any) -> None:
    raw = json.dumps(new_body(prompt="x" * 2_000_000)).encode()
    r = api.client.post(NEW, content=raw, headers=signed_headers("POST", NEW, raw))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_history_validation(api: Any) -> None:
    r = api.get("/versions", params={"userId": "../x", "projectId": "p1"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "userId"
    r = api.get("/versions", params={"userId": "u1"})
    assert r.status_code == 400
    assert api.get("/projects/u%2F1/p1/preview").status_code in (400, 404)


def test_generate_returns_contract(api: Any) -> None:
    r = api.post("/generate", {"prompt": "A portfolio for a photographer"})
    assert r.status_code == 200, r.text
    body = r.json()
    for key in ("name", "slug", "description", "version", "templateFiles", "files", "metadata"):
        assert key in body
    paths = {f["path"] for f in body["files"]}
    assert "package.json" in paths and "index.html" in paths


def test_generate_validation(api: Any) -> None:
    assert api.post("/generate", {"framework": "react"}).status_code == 400
    assert api.post("/generate", {"prompt": ""}).status_code == 400


def test_unknown_route_is_json_404(api: Any) -> None:
    r = api.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_status_is_signed(api: Any) -> None:
    assert api.get("/status", sign_it=False).status_code == 401
    r = api.get("/status")
    assert r.status_code == 200
    assert r.json()["sandbox"]["layer"] in ("cgroup_v2", "cgroup_v1", "watchdog")


def test_secret_never_in_responses(api: Any) -> None:
    r = api.get("/status")
    assert TEST_SECRET not in r.text


def test_screenshot_of_a_version_without_one_is_404(api: Any) -> None:
    vid = api.post(NEW, new_body(), params={"wait": "false"}).json()["versionId"]
    r = api.get(f"/versions/{vid}/screenshot", params={"size": "desktop"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_screenshot"
    assert api.get("/versions/01ARZ3NDEKTSV4RRFFQ69G5FAV/screenshot").status_code == 404
    stats = api.get(f"/versions/{vid}/diff/{vid}", params={"mode": "visual-stats"})
    assert stats.status_code == 404
