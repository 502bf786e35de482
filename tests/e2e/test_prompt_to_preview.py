"""End to end, real: API -> template generator -> pnpm install/build -> local deployer -> preview served."""

from __future__ import annotations

import re
import signal
import subprocess
from typing import Any

import pytest

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import add_config

pytestmark = pytest.mark.pnpm


def test_build_then_rebuild_serves_both_previews(live: Any) -> None:
    r = live.post("/build-preview-for-new-project",
                  {"userId": "alice", "projectId": "bakery", "prompt": "A bakery with a menu and opening hours"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["success"] is True, first
    assert set(first) == {"success", "previewUrl", "versionId", "buildTime"}
    assert first["buildTime"] > 0
    url1 = first["previewUrl"]
    assert re.match(r"^http://[a-z0-9-]+\.localhost:\d+/$", url1)

    page = live.preview(url1)
    assert page.status_code == 200 and "<div id=\"root\">" in page.text
    asset = re.search(r'src="(/assets/[^"]+\.js)"', page.text)
    assert asset, page.text
    js = live.preview(url1, asset.group(1))
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "immutable" in js.headers["cache-control"]
    assert "bakery" in js.text.lower()  # the page reflects the prompt
    assert live.preview(url1, "/some/client/route").status_code == 200  # SPA fallback

    r2 = live.post("/rebuild-preview", {"userId": "alice", "projectId": "bakery",
                                        "prompt": "Change the headline to Fresh bread every morning"})
    second = r2.json()
    assert second["success"] is True, second
    assert second["versionId"] != first["versionId"] and second["previewUrl"] != url1
    js2 = live.preview(second["previewUrl"], re.search(r'src="(/assets/[^"]+\.js)"',
                                                        live.preview(second["previewUrl"]).text).group(1))
    assert "Fresh bread every morning" in js2.text
    # the old preview is still served, unchanged
    assert live.preview(url1, asset.group(1)).text == js.text

    history = live.get("/versions", params={"userId": "alice", "projectId": "bakery"}).json()["versions"]
    assert [v["versionId"] for v in history] == [second["versionId"], first["versionId"]]
    v2 = history[0]
    assert v2["parentVersionId"] == first["versionId"]
    assert v2["installSkipped"] is True  # dependencies unchanged: no second install
    assert v2["nodeVersion"] and v2["pnpmVersion"] == "10.34.9"
    assert v2["artifactUrl"] and v2["outputSizeBytes"] > 0

    ptr = live.get("/projects/alice/bakery/preview").json()
    assert ptr["latestVersionId"] == second["versionId"]

    # the version's sources are a git commit readable by plain git, parent = its base
    repo = live.tmp / "data" / "projects" / "alice" / "bakery" / "repo.git"
    out = subprocess.run(["git", "--git-dir", str(repo), "log", "--format=%P", second["versionId"]],
                         capture_output=True, text=True, check=True).stdout.split()
    first_commit = subprocess.run(["git", "--git-dir", str(repo), "rev-list", "-n1", first["versionId"]],
                                  capture_output=True, text=True, check=True).stdout.strip()
    assert out[0] == first_commit
    assert subprocess.run(["git", "--git-dir", str(repo), "fsck", "--full"], capture_output=True).returncode == 0
    # node_modules and build output never reach the source commit
    tree = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", second["versionId"]],
                          capture_output=True, text=True, check=True).stdout.split()
    assert "package.json" in tree and "pnpm-lock.yaml" in tree
    assert not any(p.startswith(("node_modules/", "dist/")) for p in tree)


# Hogs memory when the prompt says so, else builds a one-file site.
HOG = '''
if "hog" in req["prompt"]:
    build = "node -e \\"const a=[];for(;;)a.push(Buffer.alloc(32*1024*1024,1))\\""
else:
    build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>"}
'''


def test_memory_hog_fails_with_memory_limit_then_next_build_succeeds(live_factory: Any) -> None:
    d = live_factory("")
    gen = write_generator(d.tmp, HOG)
    add_config(d.config, generator_config(gen, "[limits]\nmemory_mb = 256\n"))
    d.start()
    r = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "hog", "prompt": "hog memory"})
    body = r.json()
    assert body["success"] is False, body
    assert body["error"]["code"] == "memory_limit", body
    assert any("memory" in line for line in body["logTail"])
    ok = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "hog", "prompt": "plain page"}).json()
    assert ok["success"] is True, ok
    assert "plain page" in d.preview(ok["previewUrl"]).text


def test_killed_daemon_leaves_no_stuck_version(live_factory: Any) -> None:
    d = live_factory("")
    d.start()
    r = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "crash", "prompt": "A shop"},
               wait="false")
    assert r.status_code == 202
    vid = r.json()["versionId"]
    d.wait_status(vid, ("building",), timeout=60)
    d.stop(signal.SIGKILL)
    d.start()
    v = d.get(f"/versions/{vid}").json()
    assert v["status"] == "failed" and v["failureReason"] == "interrupted"
    # the project is not wedged: a new build starts it over and deploys
    again = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "crash", "prompt": "A shop"}).json()
    assert again["success"] is True, again
    assert d.preview(again["previewUrl"]).status_code == 200
