"""What a build leaves in its output can only publish itself: links out of the output dir (to /proc/self/environ and
/etc/passwd), devices and FIFOs are dropped, and server code (`_worker.js`, `functions/`, `_routes.json`) is removed,
for the local deployer and for wrangler (which follows links, and must only ever see the sanitised copy)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, log_of, page, start_daemon, victim_still_fine
from tests.fakes.cf_pages_api import FakePagesApi
from tests.support.live import LiveDaemon

WRANGLER = Path(__file__).resolve().parents[2] / "tests" / "fakes" / "wrangler"
ATTACKS = {
    "links": {"build": (
        "mkdir -p dist/sub && cp index.html dist/ && ln -s /proc/self/environ dist/env.txt"
        " && ln -s /etc/passwd dist/passwd.txt && ln -s index.html dist/alias.html"
        " && ln -s ../index.html dist/sub/up.html && ln -s ../../work dist/escape && mkfifo dist/pipe")},
    "worker-file": {"build": (
        "mkdir -p dist/functions/api && cp index.html dist/"
        " && echo 'export default { fetch() { return new Response(\"pwned\") } }' > dist/_worker.js"
        " && echo 'export function onRequest() {}' > dist/functions/api/x.js"
        " && echo '{\"version\": 1, \"include\": [\"/*\"], \"exclude\": []}' > dist/_routes.json")},
    "worker-dir": {"build": (
        "mkdir -p dist/_worker.js && cp index.html dist/"
        " && echo 'export default { fetch() { return new Response(\"pwned\") } }' > dist/_worker.js/index.js")},
}
SERVER_CODE = ("_worker.js", "functions", "_routes.json")


def _deployed_dir(d: LiveDaemon, body: dict[str, Any]) -> Path:
    dep = body["previewUrl"].split("//", 1)[1].split(".", 1)[0]
    return d.tmp / "data" / "previews" / dep


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    d = start_daemon(tmp_path_factory.mktemp("deploy-local"), ATTACKS)
    try:
        assert page(d, build(d, "alice", "site", "victim")) == VICTIM_PAGE
        yield d
    finally:
        d.stop()


def test_local_deployer_publishes_no_link_out_of_the_output(local: LiveDaemon) -> None:
    body = build(local, "mallory", "links", "links")
    assert body["success"] is True, body
    published = _deployed_dir(local, body)
    names = sorted(str(p.relative_to(published)) for p in published.rglob("*"))
    assert names == ["alias.html", "index.html", "sub", "sub/up.html"], names
    for rel in ("alias.html", "sub/up.html"):  # links inside the output dir are resolved into copies
        p = published / rel
        assert not p.is_symlink() and p.read_text() == VICTIM_PAGE
    log = log_of(local, body["versionId"])
    assert "dropped link env.txt -> /proc/self/environ" in log and "dropped link passwd.txt -> /etc/passwd" in log
    assert "dropped link escape -> ../../work" in log and "dropped pipe: not a regular file" in log
    assert "resolved link alias.html -> index.html" in log
    for path in ("/env.txt", "/passwd.txt"):
        assert local.preview(body["previewUrl"], path).status_code == 404
    victim_still_fine(local)


@pytest.mark.parametrize("attack", ["worker-file", "worker-dir"])
def test_local_deployer_removes_server_code(local: LiveDaemon, attack: str) -> None:
    body = build(local, "mallory", attack, attack)
    assert body["success"] is True, body
    published = _deployed_dir(local, body)
    assert sorted(os.listdir(published)) == ["index.html"]
    log = log_of(local, body["versionId"])
    assert "removed _worker.js" in log and "allow_functions = false" in log
    victim_still_fine(local)


def test_allow_functions_keeps_server_code(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, ATTACKS, "[deploy]\nallow_functions = true\n")
    try:
        body = build(d, "mallory", "worker", "worker-file")
        assert sorted(os.listdir(_deployed_dir(d, body))) == ["_routes.json", "_worker.js", "functions", "index.html"]
    finally:
        d.stop()


# -- wrangler (Cloudflare Pages) ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages() -> Iterator[FakePagesApi]:
    api = FakePagesApi()
    api.stage_plan = [("deploy", "active")]
    with api:
        yield api


@pytest.fixture(scope="module")
def cf(tmp_path_factory: pytest.TempPathFactory, pages: FakePagesApi) -> Iterator[LiveDaemon]:
    tmp = tmp_path_factory.mktemp("deploy-cf")
    record = tmp / "wrangler-saw.json"
    os.environ["CLOUDFLARE_API_TOKEN"] = pages.token
    try:
        d = start_daemon(tmp, ATTACKS, f'''
[deploy]
backend = "cloudflare"
cf_account_id = "{pages.account_id}"
cf_project_name = "{pages.project}"
cf_api_base = "{pages.base_url}"
wrangler = ["env", "FAKE_WRANGLER_RECORD={record}", "{sys.executable}", "{WRANGLER}"]
poll_after_s = 3600
''')
    finally:
        os.environ.pop("CLOUDFLARE_API_TOKEN", None)
    try:
        yield d
    finally:
        d.stop()


def _upload(d: LiveDaemon, pages: FakePagesApi, project: str, prompt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build and wait for the upload; (what wrangler saw, the deployment's manifest -> asset bytes)."""
    r = d.post("/build-preview-for-new-project", {"userId": "mallory", "projectId": project, "prompt": prompt},
               wait="false")
    vid = r.json()["versionId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        v = d.get(f"/versions/{vid}").json()
        if v["cfDeploymentId"] or v["status"] in ("failed", "deployed"):
            break
        time.sleep(0.1)
    assert v["status"] == "deploying" and v["cfDeploymentId"], v
    saw = json.loads((d.tmp / "wrangler-saw.json").read_text())
    manifest = pages.deployments[v["cfDeploymentId"]].manifest
    return saw, {path: pages.assets[h] for path, h in manifest.items()}


def test_wrangler_sees_only_the_sanitised_copy(cf: LiveDaemon, pages: FakePagesApi) -> None:
    saw, uploaded = _upload(cf, pages, "links", "links")
    # wrangler was pointed at a copy outside every project, holding no link, device or FIFO
    assert not Path(saw["directory"]).is_relative_to(cf.tmp / "data" / "projects"), saw
    assert saw["entries"] == {"alias.html": "file", "index.html": "file", "sub": "dir", "sub/up.html": "file"}, saw
    assert sorted(uploaded) == ["/alias.html", "/index.html", "/sub/up.html"]
    for data in uploaded.values():
        assert pages.token.encode() not in data and b"root:x:0:0" not in data and b"PATH=" not in data
    assert not Path(saw["directory"]).exists()  # the copy is gone after the upload


def test_wrangler_gets_no_server_code(cf: LiveDaemon, pages: FakePagesApi) -> None:
    for attack in ("worker-file", "worker-dir"):
        saw, uploaded = _upload(cf, pages, attack, attack)
        assert not any(e.split("/")[0] in SERVER_CODE for e in saw["entries"]), saw
        assert sorted(uploaded) == ["/index.html"]
    victim = _upload(cf, pages, "site", "victim")[1]
    assert victim == {"/index.html": VICTIM_PAGE.encode()}
    assert cf.get("/healthz").json() == {"ok": True}
