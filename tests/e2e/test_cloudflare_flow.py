"""The cloudflare deployer through the real daemon: wrangler upload, webhook handshake, polling fallback, restart."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.deployers.cloudflare.branches import live_branch
from tests.fakes.cf_pages_api import FakePagesApi
from tests.fakes.tiny_generator import ECHO_PAGE, generator_config, write_generator
from tests.support import wait_until
from tests.support.live import LiveDaemon

REPO = Path(__file__).resolve().parents[2]
WRANGLER = REPO / "tests" / "fakes" / "wrangler"
HOOK_SECRET = "hook-secret-for-tests"



@pytest.fixture
def pages() -> Iterator[FakePagesApi]:
    api = FakePagesApi()
    api.stage_plan = [("deploy", "active")]  # stays unconfirmed until a test says otherwise
    with api:
        yield api


def _daemon(tmp: Path, pages: FakePagesApi, extra: str = "") -> LiveDaemon:
    gen = write_generator(tmp, ECHO_PAGE)
    d = LiveDaemon(tmp, generator_config(gen) + textwrap.dedent(f'''
        [deploy]
        backend = "cloudflare"
        cf_account_id = "{pages.account_id}"
        cf_project_name = "{pages.project}"
        cf_api_base = "{pages.base_url}"
        wrangler = ["{sys.executable}", "{WRANGLER}"]
        poll_interval_s = 1.0
        {extra}
    '''))
    os.environ["CLOUDFLARE_API_TOKEN"] = pages.token
    os.environ["PREVIEWD_CF_WEBHOOK_SECRET"] = HOOK_SECRET
    return d


@pytest.fixture(autouse=True)
def _clean_env() -> Iterator[None]:
    yield
    os.environ.pop("CLOUDFLARE_API_TOKEN", None)
    os.environ.pop("PREVIEWD_CF_WEBHOOK_SECRET", None)


def _uploaded(d: LiveDaemon, vid: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the upload is done: the version carries its deployment id (or it failed)."""
    def uploaded() -> dict[str, Any] | None:
        v: dict[str, Any] = d.get(f"/versions/{vid}").json()
        return v if v["cfDeploymentId"] or v["status"] in ("failed", "deployed") else None

    return wait_until(uploaded, timeout, interval=0.1, what=f"{vid} being uploaded")  # type: ignore[no-any-return]


def _hook(d: LiveDaemon, payload: Any, secret: str | None = HOOK_SECRET) -> Any:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["cf-webhook-auth"] = secret
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return d.http.post(d.base + "/cf-pages-callback", content=body, headers=headers)


def _event(deployment_id: str, event: str = "EVENT_DEPLOYMENT_SUCCESS") -> dict[str, Any]:
    return {"name": "Pages", "text": f"Deployment {deployment_id}", "alert_type": "pages_event_alert",
            "alert_event": event, "data": {"deployment_id": deployment_id, "project_name": "previewd-test"}}


def test_webhook_settles_once_and_moves_the_pointer(tmp_path: Path, pages: FakePagesApi) -> None:
    d = _daemon(tmp_path, pages, "poll_after_s = 3600").start()
    try:
        r = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "cf", "prompt": "hello pages"},
                   wait="false")
        vid = r.json()["versionId"]
        v = _uploaded(d, vid)
        assert v["status"] == "deploying", v
        dep_id = v["cfDeploymentId"]
        assert dep_id and dep_id in pages.deployments
        assert ".pages.dev" in v["previewUrl"]
        assert d.get("/projects/u/cf/preview").status_code == 404  # nothing live until confirmed

        assert _hook(d, _event(dep_id), secret=None).status_code == 401
        assert _hook(d, _event(dep_id), secret="wrong").status_code == 401
        assert _hook(d, b"{not json", secret=HOOK_SECRET).status_code == 400
        assert d.get(f"/versions/{vid}").json()["status"] == "deploying"

        ok = _hook(d, _event(dep_id)).json()
        assert ok["changed"] is True and ok["versionId"] == vid
        assert d.get(f"/versions/{vid}").json()["status"] == "deployed"
        assert d.get("/projects/u/cf/preview").json()["latestVersionId"] == vid
        before = d.get(f"/versions/{vid}").json()["updatedAt"]
        # Pages retrying the same notification (five times) changes nothing
        for _ in range(5):
            assert _hook(d, _event(dep_id)).json()["changed"] is False
        late_failure = _hook(d, _event(dep_id, "EVENT_DEPLOYMENT_FAILED")).json()
        assert late_failure["changed"] is False
        assert d.get(f"/versions/{vid}").json()["updatedAt"] == before
        # unknown deployments and the dashboard's test message are acknowledged
        assert _hook(d, _event("00000000-0000-0000-0000-000000000000")).json()["matched"] is False
        assert _hook(d, {"text": "test notification"}).status_code == 200
        # rollback on Cloudflare: the stored artifact goes up as a new deployment, confirmed the same way
        rb = d.post(f"/rollback/{vid}", {"userId": "u", "projectId": "cf"}, wait="false").json()
        rv = _uploaded(d, rb["versionId"])
        assert rv["status"] == "deploying" and rv["cfDeploymentId"] not in (None, dep_id)
        assert _hook(d, _event(rv["cfDeploymentId"])).json()["changed"] is True
        assert d.get("/projects/u/cf/preview").json()["latestVersionId"] == rb["versionId"]
        # the token reached wrangler but no log line
        log = d.get(f"/versions/{vid}/log").text
        assert pages.token not in log
        assert dep_id in log
    finally:
        d.stop()


def test_polling_fallback_confirms_and_resumes_after_restart(tmp_path: Path, pages: FakePagesApi) -> None:
    d = _daemon(tmp_path, pages, "poll_after_s = 1.0").start()
    try:
        r = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "poll", "prompt": "p"},
                   wait="false")
        vid = r.json()["versionId"]
        v = _uploaded(d, vid)
        assert v["status"] == "deploying", v
        d.stop(signal.SIGKILL)  # the pending poll is a row: a restart picks it up
        d.start()
        time.sleep(1.5)
        assert d.get(f"/versions/{vid}").json()["status"] == "deploying"
        pages.set_stage(v["cfDeploymentId"], "deploy", "success")
        done = d.wait_status(vid, ("deployed", "failed"), timeout=30)
        assert done["status"] == "deployed"
        assert d.get("/projects/u/poll/preview").json()["latestVersionId"] == vid
        # a webhook arriving after the poll settled it changes nothing
        assert _hook(d, _event(v["cfDeploymentId"])).json()["changed"] is False
    finally:
        d.stop()


def test_failed_stage_and_give_up_deadline(tmp_path: Path, pages: FakePagesApi) -> None:
    d = _daemon(tmp_path, pages, "poll_after_s = 0.0\ngive_up_after_s = 4.0").start()
    try:
        r1 = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "bad", "prompt": "p"},
                    wait="false").json()
        v1 = _uploaded(d, r1["versionId"])
        pages.set_stage(v1["cfDeploymentId"], "deploy", "failure")
        failed = d.wait_status(r1["versionId"], ("failed", "deployed"), timeout=30)
        assert failed["status"] == "failed" and failed["failureReason"] == "deploy_failed"

        r2 = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "slow", "prompt": "p"},
                    wait="false").json()
        never = d.wait_status(r2["versionId"], ("failed", "deployed"), timeout=60)
        assert never["status"] == "failed" and "not confirmed" in never["failureMessage"]
    finally:
        d.stop()


def test_wrangler_failure_fails_the_version(tmp_path: Path, pages: FakePagesApi) -> None:
    d = _daemon(tmp_path, pages)
    d.config.write_text(d.config.read_text().replace(
        f'wrangler = ["{sys.executable}", "{WRANGLER}"]',
        f'wrangler = ["env", "FAKE_WRANGLER_MODE=fail", "{sys.executable}", "{WRANGLER}"]'))
    d.start()
    try:
        body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "w", "prompt": "p"}).json()
        assert body["success"] is False and body["error"]["code"] == "deploy_failed", body
        assert pages.token not in json.dumps(body)
    finally:
        d.stop()


def test_live_branch_alias_follows_undo_redo_and_names_the_user(tmp_path: Path, pages: FakePagesApi) -> None:
    pages.stage_plan = [("deploy", "success")]  # the polling fallback confirms each upload at once
    d = _daemon(tmp_path, pages, "poll_after_s = 0.0").start()
    try:
        def build(path: str, user: str, prompt: str) -> dict[str, Any]:
            body: dict[str, Any] = d.post(path, {"userId": user, "projectId": "site", "prompt": prompt}).json()
            assert body.get("status") == "deploying" and body.get("liveUrl"), body  # uploaded, not yet confirmed
            assert d.wait_status(body["versionId"], ("deployed", "failed"), timeout=60)["status"] == "deployed"
            return body

        def on_branch(branch: str) -> list[Any]:
            return [dep for dep in list(pages.deployments.values()) if dep.branch == branch]  # upload order

        def page(dep: Any) -> bytes:
            return pages.assets[dep.manifest["/index.html"]]

        b1 = build("/build-preview-for-new-project", "alice", "first page")
        b2 = build("/rebuild-preview", "alice", "second page")
        branch = live_branch("alice", "site")
        alias = f"https://{branch}.{pages.project}.pages.dev/"
        assert "alice" in branch and b1["liveUrl"] == b2["liveUrl"] == alias
        history = d.get("/versions", params={"userId": "alice", "projectId": "site"}).json()
        assert history["liveUrl"] == alias
        ups = on_branch(branch)
        assert [dep.commit_hash for dep in ups] == [b1["versionId"], b2["versionId"]]

        # undo: the pointer moves at once; the older version's artifact goes up to the same branch after
        assert d.post("/projects/alice/site/undo", {}).json()["versionId"] == b1["versionId"]
        redeploy = wait_until(lambda: on_branch(branch)[2:], 60, interval=0.1, what="the alias redeploy")[0]
        assert redeploy.commit_hash == b1["versionId"] and b"first page" in page(redeploy)
        assert d.get("/versions", params={"userId": "alice", "projectId": "site"}).json()["liveUrl"] == alias
        # redo: the newer one goes back up; the pages quota counts both redeploys
        assert d.post("/projects/alice/site/redo", {}).json()["versionId"] == b2["versionId"]
        again = wait_until(lambda: on_branch(branch)[3:], 60, interval=0.1, what="the redo redeploy")[0]
        assert again.commit_hash == b2["versionId"] and b"second page" in page(again)
        # The redeploy is recorded when wrangler returns, a moment after the fake Pages API saw the upload.
        wait_until(lambda: "previewd_pages_deployments_month 4.0" in d.get("/metrics").text, 30, interval=0.1,
                   what="both redeploys counted in the Pages quota")

        # another user's project with the same id gets its own branch
        bob = build("/build-preview-for-new-project", "bob", "bob page")
        assert bob["liveUrl"] != alias and live_branch("bob", "site") != branch
        assert [dep.commit_hash for dep in on_branch(live_branch("bob", "site"))] == [bob["versionId"]]
        assert len(on_branch(branch)) == 4
    finally:
        d.stop()
