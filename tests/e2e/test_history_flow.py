"""History through the real daemon: diffs, rollback (fast and slow), undo/redo, restore onto a fresh data dir."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm


def _build(d: LiveDaemon, prompt: str, new: bool = False, **extra: Any) -> dict[str, Any]:
    path = "/build-preview-for-new-project" if new else "/rebuild-preview"
    body = d.post(path, {"userId": "u", "projectId": "site", "prompt": prompt, **extra}).json()
    assert body["success"] is True, body
    return body  # type: ignore[no-any-return]


def _live(d: LiveDaemon) -> str:
    return d.get("/projects/u/site/preview").json()["latestVersionId"]  # type: ignore[no-any-return]


def test_diff_rollback_undo_redo_restore(live_factory: Any) -> None:
    d = live_factory("")
    d.start()
    v1 = _build(d, "A yoga studio with a class schedule", new=True)["versionId"]
    v2 = _build(d, "Change the headline to Breathe in, breathe out")["versionId"]

    # diffs on real versions
    patch = d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "patch"})
    assert patch.status_code == 200 and patch.headers["content-type"].startswith("text/x-diff")
    assert "+" in patch.text and "Breathe in, breathe out" in patch.text
    assert "diff --git a/src/content.ts b/src/content.ts" in patch.text
    stat = d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "stat"}).json()
    assert stat["filesChanged"] == 1 and stat["insertions"] >= 1
    files = d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "files"}).json()["files"]
    assert [f["path"] for f in files] == ["src/content.ts"]
    assert d.get(f"/versions/{v1}/diff/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "bogus"}).status_code == 400

    # rollback, fast path: the artifact is redeployed, no build
    rb = d.post(f"/rollback/{v1}", {"userId": "u", "projectId": "site"}).json()
    assert rb["success"] is True, rb
    v3 = rb["versionId"]
    row = d.get(f"/versions/{v3}").json()
    assert row["rollbackOf"] == v1 and row["parentVersionId"] == v1 and row["kind"] == "rollback"
    assert row["status"] == "deployed" and _live(d) == v3
    assert "yoga" in d.preview(rb["previewUrl"]).text.lower() or d.preview(rb["previewUrl"]).status_code == 200
    assert d.get(f"/versions/{v1}/diff/{v3}", params={"mode": "files"}).json()["files"] == []

    # undo / redo walk the live pointer without building
    u = d.post("/projects/u/site/undo", {}).json()
    assert u["versionId"] == v2 and _live(d) == v2
    u = d.post("/projects/u/site/undo", {}).json()
    assert u["versionId"] == v1 and _live(d) == v1
    r = d.post("/projects/u/site/redo", {}).json()
    assert r["versionId"] == v2 and _live(d) == v2
    # a new build in the middle clears the redo stack
    v4 = _build(d, "Add a pricing section")["versionId"]
    assert _live(d) == v4
    nothing = d.post("/projects/u/site/redo", {})
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_redo"
    assert d.post("/projects/u/site/undo", {}).json()["versionId"] == v2

    # rollback, slow path: the artifact is gone, the sources are rebuilt
    (d.tmp / "data" / "objects" / "u" / "site" / "snapshots" / f"{v1}.zip").unlink()
    slow = d.post(f"/rollback/{v1}", {"userId": "u", "projectId": "site"}).json()
    assert slow["success"] is True, slow
    slow_row = d.get(f"/versions/{slow['versionId']}").json()
    assert slow_row["rollbackOf"] == v1 and slow_row["status"] == "deployed"
    assert d.get(f"/versions/{v1}/diff/{slow['versionId']}", params={"mode": "files"}).json()["files"] == []

    # branching history in git: v4 was built on v2 while v3 (rollback) hangs off v1
    repo = d.tmp / "data" / "projects" / "u" / "site" / "repo.git"
    graph = subprocess.run(["git", "--git-dir", str(repo), "log", "--graph", "--oneline", "--all"],
                           capture_output=True, text=True, check=True).stdout
    assert "|/" in graph or "|\\" in graph
    assert subprocess.run(["git", "--git-dir", str(repo), "fsck", "--full"], capture_output=True).returncode == 0

    # restore: a fresh data dir with only the object store (packs) and the rows gets its history back
    d.stop()
    shutil.rmtree(repo)
    d.start()
    restored = d.post("/projects/u/site/restore", {}).json()
    assert restored["packs"] >= 4 and restored["versions"] >= 4, restored
    files = d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "files"}).json()["files"]
    assert [f["path"] for f in files] == ["src/content.ts"]
    again = d.post(f"/rollback/{v2}", {"userId": "u", "projectId": "site"}).json()
    assert again["success"] is True, again
    assert d.post("/projects/u/site/restore", {}).status_code == 409  # only into an empty slot


def test_rollback_to_failed_version_is_409(live_factory: Any) -> None:
    d = live_factory("[limits]\nwall_seconds = 0.5\n")
    d.start()
    failed = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "f", "prompt": "x"}).json()
    assert failed["success"] is False and failed["error"]["code"] == "timeout", failed
    r = d.post(f"/rollback/{failed['versionId']}", {"userId": "u", "projectId": "f"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "target_failed"
    other = d.post(f"/rollback/{failed['versionId']}", {"userId": "u", "projectId": "nope"})
    assert other.status_code == 404
