"""The warm bundler's decisions without a build: which file sets may go warm, what forces a fresh bundler, how
its answers are read, how the pool stops bundlers, and how a version's bundle path is shown."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from daemon.cli.versionlist import timings_line
from daemon.core.config import Config
from daemon.steps import warm
from tests.support import make_config


def _pkg(build: str = "tsc -b && vite build", **deps: str) -> str:
    return json.dumps({"scripts": {"build": build}, "devDependencies": {"vite": "6.4.6", **deps}})


@pytest.mark.parametrize(("files", "workspace", "why"), [
    ({"package.json": _pkg()}, False, None),
    ({"package.json": _pkg("vite build")}, False, None),
    ({"package.json": _pkg()}, True, "pnpm workspace"),
    ({"package.json": json.dumps({"scripts": {"build": "vite build"}})}, False, "does not use Vite"),
    ({"package.json": _pkg(astro="5.0.0")}, False, "framework astro"),
    ({"package.json": _pkg("vite build --mode staging")}, False, "not `vite build`"),
    ({"package.json": _pkg("node evil.js && vite build")}, False, "not `vite build`"),
    ({"package.json": "[1]"}, False, "not an object"),
    ({"package.json": "{"}, False, "not JSON"),
])
def test_which_projects_may_go_warm(files: dict[str, str], workspace: bool, why: str | None) -> None:
    got = warm.not_warmable(files, workspace)
    assert (got is None) if why is None else (got is not None and why in got), got


def test_the_fingerprint_follows_what_the_bundler_read_once() -> None:
    files = {"package.json": _pkg(), "pnpm-lock.yaml": "lock", "vite.config.ts": "cfg", "src/theme.ts": "a",
             "src/App.tsx": "app"}
    base = warm.fingerprint(files, ("src/theme.ts",), "v22")
    assert warm.fingerprint({**files, "src/App.tsx": "changed"}, ("src/theme.ts",), "v22") == base
    for name in ("package.json", "pnpm-lock.yaml", "vite.config.ts", "src/theme.ts"):
        assert warm.fingerprint({**files, name: "changed"}, ("src/theme.ts",), "v22") != base, name
    assert warm.fingerprint({**files, "vite.config.mjs": "new"}, ("src/theme.ts",), "v22") != base
    assert warm.fingerprint(files, ("src/theme.ts",), "v24") != base


def test_answers_are_read_and_other_lines_go_to_the_build_log(tmp_path: Path) -> None:
    b = warm.Bundler(("u", "p"), tmp_path, "fp", sent={"b1", "b2", "b3"})
    lines: list[str] = []
    b.on_line("before any build")  # nobody listens: dropped
    b.sink = lines.append
    b.on_line(warm.MARK + "ready")
    b.on_line("vite v6.4.6 building for production...")
    deps = json.dumps([str(tmp_path / "vite.config.ts"), str(tmp_path / "node_modules/x/index.js"), "/etc/passwd"])
    b.on_line(warm.MARK + f"done b1 ok 812 {deps}")
    b.on_line(warm.MARK + "done b2 failed 90")
    b.on_line(warm.MARK + "done b3 ok notanumber")
    assert b.ready and lines == ["vite v6.4.6 building for production..."]
    assert b.answers["b1"] == (True, 812, ("vite.config.ts",))  # outside the workspace or in node_modules: gone
    assert b.answers["b2"] == (False, 90, ())
    assert "b3" not in b.answers
    b.on_line(warm.MARK + "done forged ok 1")  # never asked: generated code cannot grow the daemon's memory
    b.on_line(warm.MARK + "done b1 ok 1")  # answered once
    assert set(b.answers) == {"b1", "b2"} and b.answers["b1"][1] == 812


def test_a_bundler_tree_is_stopped_and_resumed_whole() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        b = warm.Bundler(("u", "p"), Path("/"), "fp", pid=proc.pid)
        tree = psutil.Process(proc.pid)
        deadline = time.monotonic() + 5
        while len(tree.children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        b.signal_tree(signal.SIGSTOP)
        assert b.stopped
        assert all(p.status() == psutil.STATUS_STOPPED for p in [tree, *tree.children(recursive=True)])
        b.signal_tree(signal.SIGCONT)
        assert not b.stopped
        assert all(p.status() != psutil.STATUS_STOPPED for p in [tree, *tree.children(recursive=True)])
        assert b.rss() > 0
    finally:
        proc.kill()
        proc.wait()


def test_the_pool_stops_idle_and_ended_bundlers(tmp_path: Path) -> None:
    cfg = Config()
    pool = warm.Pool(cfg, "watchdog")
    idle = warm.Bundler(("u", "idle"), tmp_path, "fp", last_used=time.monotonic() - cfg.build.warm_idle_s - 1)
    busy = warm.Bundler(("u", "busy"), tmp_path, "fp")
    ended = warm.Bundler(("u", "ended"), tmp_path, "fp")
    ended.ended(None)
    for b in (idle, busy, ended):
        pool._bundlers[b.key] = b
    pool.reap()
    assert pool.keys() == [("u", "busy")]
    assert idle.cancel.is_set() and not busy.cancel.is_set()
    assert pool.stop_all("test") == 1 and pool.keys() == []


def test_a_draining_droplet_keeps_no_bundler(tmp_path: Path) -> None:
    draining = False
    pool = warm.Pool(Config(), "watchdog", draining=lambda: draining)
    b = warm.Bundler(("u", "p"), tmp_path, "fp")
    pool._bundlers[b.key] = b
    pool.reap()
    assert pool.keys() == [("u", "p")]
    draining = True
    pool.reap()
    assert pool.keys() == [] and b.cancel.is_set()


def test_the_bundle_path_is_shown() -> None:
    assert timings_line({"timings": {"queue": 5, "bundle": 800, "bundle_warm": 800, "deploy": 40}}) == \
        "bundle: warm bundler; timings: queue 5 ms, bundle warm 800 ms, deploy 40 ms"
    assert timings_line({"timings": {"bundle_cold": 3000}}).startswith("bundle: cold;")
    assert timings_line({"timings": {}}) == "timings: none recorded"


def test_why_a_build_is_cold(tmp_path: Path) -> None:
    files = {"package.json": _pkg(), "pnpm-lock.yaml": "lock", "vite.config.ts": "cfg", "src/App.tsx": "a"}

    def ctx(**over: Any) -> Any:
        base = {"v": SimpleNamespace(user_id="u", project_id="p"), "files": files,
                "layout": SimpleNamespace(is_workspace=False), "reusable": {"fingerprint": "x"},
                "box": SimpleNamespace(tc=SimpleNamespace(node_version="v22"))}
        return SimpleNamespace(**{**base, **over})

    off = make_config(tmp_path)  # the tests' config: no warm bundlers
    assert "off" in (warm.Pool(off, "watchdog").why_cold(ctx()) or "")
    pool = warm.Pool(Config(), "watchdog")
    assert "no warm bundler" in (pool.why_cold(ctx()) or "")
    pool._bundlers[("u", "p")] = warm.Bundler(("u", "p"), tmp_path, warm.fingerprint(files, (), "v22"))
    assert pool.why_cold(ctx(files={**files, "src/App.tsx": "b"})) is None  # a source change: warm
    assert "installed again" in (pool.why_cold(ctx(reusable=None)) or "")
    assert pool.keys() == []  # a stale bundler goes at once
    pool._bundlers[("u", "p")] = warm.Bundler(("u", "p"), tmp_path, warm.fingerprint(files, (), "v22"))
    assert "bundler config" in (pool.why_cold(ctx(files={**files, "vite.config.ts": "x"})) or "")
