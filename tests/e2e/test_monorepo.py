"""A pnpm workspace through the real daemon and real pnpm: a Vite app in apps/web built with its local packages,
a rebuild touching only packages/ui rebuilds just what depends on it, and the workspaces the daemon refuses."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.tiny_generator import generator_config
from tests.fakes.workspace_generator import GENERATOR
from tests.support import wait_until
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm


def _bundle(d: LiveDaemon, url: str) -> str:
    """The preview's page and the JS bundle it loads."""
    page = d.preview(url)
    assert page.status_code == 200, page.text
    src = re.search(r'src="(/assets/[^"]+\.js)"', page.text)
    assert src, page.text
    return d.preview(url, src.group(1)).text


def _build(d: LiveDaemon, path: str, body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = d.post(path, {"userId": "u", **body}).json()
    return out


def test_workspace_build_rebuild_and_refusals(tmp_path: Path) -> None:
    gen = tmp_path / "gen.py"
    gen.write_text(GENERATOR)
    d = LiveDaemon(tmp_path, generator_config(gen, "[render]\nenabled = false\n")).start()
    try:
        # A targetPackage outside the workspace is refused before anything is queued.
        out = d.post("/build-preview-for-new-project",
                     {"userId": "u", "projectId": "ws", "prompt": "x", "targetPackage": "../other"})
        assert out.status_code == 400 and out.json()["error"]["field"] == "targetPackage", out.text

        # The workspace: installed once, apps/web picked (the only package with a build script and a framework),
        # built with its two local packages, output found in apps/web/dist, and served.
        first = _build(d, "/build-preview-for-new-project", {"projectId": "ws", "prompt": "new"})
        log = d.get(f"/versions/{first['versionId']}/log").text
        assert first["success"] is True, (first, log)
        row = d.get(f"/versions/{first['versionId']}").json()
        assert row["targetPackage"] == "apps/web" and row["framework"] == "vite", row
        assert "target web (apps/web)" in log and "packages built: @demo/theme (packages/theme), " \
            "@demo/ui (packages/ui), web (apps/web)" in log, log
        assert "Hello from the UI package" in _bundle(d, first["previewUrl"])

        # A rebuild touching only packages/ui: no install, ui and the app rebuilt, theme left as built.
        second = _build(d, "/rebuild-preview", {"projectId": "ws", "prompt": "ui:Fresh banner text"})
        log = d.get(f"/versions/{second['versionId']}/log").text
        assert second["success"] is True, (second, log)
        row = d.get(f"/versions/{second['versionId']}").json()
        assert row["installSkipped"] is True and row["targetPackage"] == "apps/web", row
        assert "packages built: @demo/ui (packages/ui), web (apps/web); unchanged, not rebuilt: " \
            "@demo/theme (packages/theme)" in log, log
        bundle = _bundle(d, second["previewUrl"])
        assert "Fresh banner text" in bundle and "teal" in bundle
        # history is as for a single package: the diff is the one source file, paths relative to the root
        files = d.get(f"/versions/{first['versionId']}/diff/{second['versionId']}", params={"mode": "files"})
        assert [f["path"] for f in files.json()["files"]] == ["packages/ui/src/index.js"]
        # the sources snapshot holds no build output (the packages' kept dist dirs included); the dist ref does
        git = ["git", "--git-dir", str(tmp_path / "data/projects/u/ws/repo.git")]
        tree = subprocess.run([*git, "ls-tree", "-r", "--name-only", f"refs/tags/{second['versionId']}"],
                              capture_output=True, text=True, check=True).stdout.split()
        assert "packages/ui/src/index.js" in tree and "pnpm-lock.yaml" in tree
        assert not [p for p in tree if "/dist/" in p or "node_modules" in p], tree
        show = [*git, "show", f"refs/dist/{second['versionId']}:apps/web/dist/index.html"]
        # the dist ref is written in the worker after the answer
        dist = wait_until(lambda: subprocess.run(show, capture_output=True, text=True).stdout, 30, what="dist ref")
        assert "/assets/" in dist

        # Rollback as for a single package: the artifact redeployed (fast), then the sources rebuilt (slow), both
        # recording the same target.
        fast = d.post(f"/rollback/{first['versionId']}", {"userId": "u", "projectId": "ws"}).json()
        assert fast["success"] is True and "Hello from the UI package" in _bundle(d, fast["previewUrl"]), fast
        assert d.get(f"/versions/{fast['versionId']}").json()["targetPackage"] == "apps/web"
        (tmp_path / "data" / "objects" / "u" / "ws" / "snapshots" / f"{first['versionId']}.zip").unlink()
        slow = d.post(f"/rollback/{first['versionId']}", {"userId": "u", "projectId": "ws"}).json()
        log = d.get(f"/versions/{slow['versionId']}/log").text
        assert slow["success"] is True, (slow, log)
        assert "packages built: @demo/ui (packages/ui), web (apps/web)" in log, log
        assert d.get(f"/versions/{slow['versionId']}").json()["targetPackage"] == "apps/web"
        assert "Hello from the UI package" in _bundle(d, slow["previewUrl"])

        # Refused workspaces: two web apps (candidates listed), a workspace file allowing every build script.
        amb = _build(d, "/build-preview-for-new-project", {"projectId": "amb", "prompt": "ambiguous"})
        assert amb["success"] is False and amb["error"]["code"] == "invalid_output", amb
        assert "candidates: admin (apps/admin), web (apps/web)" in amb["error"]["message"]
        allow = _build(d, "/build-preview-for-new-project", {"projectId": "allow", "prompt": "allow-all"})
        assert allow["success"] is False and allow["error"]["code"] == "invalid_output", allow
        assert "dangerouslyAllowAllBuilds" in allow["error"]["message"]
    finally:
        d.stop()
