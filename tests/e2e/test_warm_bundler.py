"""End to end, real: a first build leaves a warm bundler; a one-file rebuild goes through it and deploys, file for
file, what a cold `vite build` of the same sources writes; a SIGKILLed daemon leaves no bundler behind."""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import wait_until

pytestmark = pytest.mark.pnpm

MARK = "@@previewd-warm"  # in the driver's source, which is its argv: how a bundler process is recognised


def _bundlers() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if any(MARK in a for a in (p.info.get("cmdline") or ())):
            found.append(p)
    return found


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_warm_rebuild_matches_cold_and_dies_with_the_daemon(live_factory: Any, tmp_path: Path) -> None:
    before = {p.pid for p in _bundlers()}  # other tests' daemons on this machine may have their own
    live = live_factory("[build]\nwarm_projects = 2\n").start()
    r = live.post("/build-preview-for-new-project",
                  {"userId": "alice", "projectId": "warm", "prompt": "A bakery with a menu and opening hours"})
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    first = live.get(f"/versions/{r.json()['versionId']}").json()
    assert first["timings"].get("bundle_cold", 0) > 0 and "bundle_warm" not in first["timings"], first["timings"]
    mine = wait_until(lambda: [p for p in _bundlers() if p.pid not in before], 60, interval=0.2,
                      what="a warm bundler after the first build")
    assert all(p.uids().real == 65534 for p in mine if p.name() == "node"), "the bundler runs as the build user"

    r2 = live.post("/rebuild-preview", {"userId": "alice", "projectId": "warm",
                                        "prompt": "Change the headline to Fresh bread every morning"})
    second = r2.json()
    assert second["success"] is True, second
    v2 = live.get(f"/versions/{second['versionId']}").json()
    log = (live.tmp / "data" / "logs" / f"{second['versionId']}.log").read_text()
    assert v2["timings"].get("bundle_warm", 0) > 0 and "bundle_cold" not in v2["timings"], (v2["timings"], log)
    for key in ("queue", "write", "export", "deploy"):
        assert key in v2["timings"], v2["timings"]
    assert "build: ok (warm bundler" in log, log

    # The cold build of the very same sources (the workspace holds v2's), beside the warm one: file for file. The
    # old output goes first, as the bundle step removes it (Tailwind would read its class names).
    work = live.tmp / "data" / "projects" / "alice" / "warm" / "work"
    cold = tmp_path / "cold"
    shutil.rmtree(work / "dist")
    subprocess.run([str(work / "node_modules" / ".bin" / "vite"), "build", "--outDir", str(cold), "--emptyOutDir"],
                   cwd=work, check=True, capture_output=True, env={**os.environ, "NODE_ENV": "production"})
    deployed = next(d for d in (live.tmp / "data" / "previews").iterdir() if (d / "index.html").is_file()
                    and "Fresh bread every morning" in "".join(p.read_text(errors="replace")
                                                               for p in d.rglob("*.js")))
    assert _files(cold) == _files(deployed) - {"_headers", "_redirects"} and _files(cold)
    for rel in _files(cold):
        assert filecmp.cmp(cold / rel, deployed / rel, shallow=False), rel

    # SIGKILL: no cleanup runs, yet the bundler (stopped between builds) goes with its daemon.
    pids = [p.pid for p in _bundlers() if p.pid not in before]
    assert pids
    live.stop(signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                              for p in pids):
        time.sleep(0.2)
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not left, f"warm bundler processes outlived a SIGKILLed daemon: {left}"
