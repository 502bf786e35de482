"""Helpers for the sandbox integration tests: run a Python snippet in the sandbox and check the host after."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

import sandbox
from sandbox import Limits, Result
from sandbox.layers import LAYER_NAMES
from sandbox.probe import layer_availability

# Parametrise over what this machine really offers (here: cgroup_v1 and watchdog); never skip.
HOST_LAYERS = [name for name in LAYER_NAMES if layer_availability(name).available]

# The system interpreter: readable by any user (the venv's lives under /root).
PY = "/usr/bin/python3"


def run_py(code: str, workspace: Path, limits: Limits, layer: str, **kw: Any) -> tuple[Result, list[str]]:
    """Run `python3 -c code` in the sandbox; return the result and the lines it printed."""
    lines: list[str] = []
    env = kw.pop("env", None) or sandbox.safe_env({}, home=workspace / "home")
    res = sandbox.run([PY, "-c", code], workspace, env, limits, on_line=lines.append, layer=layer, **kw)
    return res, lines


def assert_normal_run(workspace: Path, layer: str) -> None:
    """After an adversarial run, an ordinary command in the same workspace must succeed."""
    res, lines = run_py("print('still fine')", workspace, Limits(wall_seconds=30), layer)
    assert (res.reason, res.exit_code) == ("ok", 0), res
    assert lines == ["still fine"]


def alive(pid: int) -> bool:
    """True when pid is a running (non-zombie) process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def no_process_with(marker: str) -> bool:
    """True when no live process on the host has `marker` in its command line."""
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def read_pids(path: Path) -> list[int]:
    """Pids a child wrote one per line."""
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def my_pid() -> int:
    """The supervisor's pid (this test process)."""
    return os.getpid()
