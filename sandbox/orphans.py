"""At start: kill the build processes a dead daemon left running (a SIGKILL or OOM kill runs no cleanup)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import psutil

log = logging.getLogger("previewd")


def kill_leftovers(data_dir: Path) -> list[int]:
    """SIGKILL every process whose working directory is inside the data dir's projects or tmp, except this one.

    Build steps run in the project's workspace; when the daemon dies, only the step's first process has a
    parent-death signal, so its children (`sh -c`, the bundler, a sleeping script) run on for nobody. The
    version itself is failed as `interrupted` by the caller's recovery. Returns the pids killed.
    """
    roots = [str((data_dir / sub).resolve()) + os.sep for sub in ("projects", "tmp")]
    me = os.getpid()
    victims: list[psutil.Process] = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd")
        if proc.info["pid"] == me or not cwd:
            continue
        if any((cwd + os.sep).startswith(root) for root in roots):
            victims.append(proc)
    for proc in victims:
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=5)
    pids = [p.pid for p in victims]
    if pids:
        log.warning("killed %d processes a previous daemon left running in %s: %s", len(pids), data_dir,
                    ", ".join(map(str, pids)))
    return pids
