"""Space back after a build failed on a full data disk: what the failed build left in its project is removed in
steps (its output, its caches, whatever it wrote beside the sources, its node_modules) until there is room to
record the failure. Without it a build that fills the disk outside its output dir leaves the version `building`
and every later write of every tenant answering 503 disk_full until an operator steps in. A build stopped at its
disk cap empties the project's caches (drop_caches)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core import diskspace
from daemon.core.db import ProjectVersion
from daemon.project import frameworks, isolation
from sandbox import safepath

if TYPE_CHECKING:
    from daemon.runtime import Runtime

LOW_DISK_BYTES = 4 * 2**20  # below this free on the data dir's disk, a failed build is called a full disk
KEPT_IN_WORK = ("node_modules", ".git")  # .git: never the daemon's to remove (see workspace.ALWAYS_KEPT)


def _remove(root: Path, rel: str | list[str]) -> None:
    with contextlib.suppress(OSError):  # a part the build made unremovable: the next step may still free enough
        safepath.remove_tree(root, rel)


def _top_level(work: Path) -> list[str]:
    try:
        return sorted(os.listdir(work))
    except OSError:
        return []


def free_after_failure(data_dir: Path, dirs: isolation.ProjectDirs, outputs: Iterable[str], extra: Iterable[Path],
                       low: int) -> list[str]:
    """Remove the failed build's leftovers step by step until `low` bytes are free on the data dir's filesystem;
    returns the steps taken. Every file removed is rewritten by the project's next build (materialize writes the
    sources exactly, install refills node_modules from the store), so nothing of the history is touched."""

    def room() -> bool:
        return diskspace.free_bytes(data_dir) >= low

    steps: list[str] = []
    for rel in outputs:
        _remove(dirs.work, rel)
    for path in extra:
        _remove(path.parent, path.name)
    steps.append("output")
    if room():
        return steps
    _remove(dirs.project, "cache")
    for d in isolation.CODE_CACHE_DIRS:
        _remove(dirs.work, ["node_modules", d])
    steps.append("caches")
    if room():
        return steps
    for name in _top_level(dirs.work):
        if name not in KEPT_IN_WORK:
            _remove(dirs.work, name)
    steps.append("workspace files")
    if room():
        return steps
    _remove(dirs.work, "node_modules")
    steps.append("node_modules")
    return steps


def disk_full_note(rt: Runtime, v: ProjectVersion, message: str) -> str:
    """On a full data disk: delete the failed build's output (never used), so the failure can still be written
    to state.db, and say in the message that the disk was full."""
    try:
        free = shutil.disk_usage(rt.data_dir).free
        if free >= LOW_DISK_BYTES:
            return message
        dirs = isolation.project_dirs(rt.data_dir, v.user_id, v.project_id)
        _, candidates = frameworks.detect(dirs.work)
        removed = free_after_failure(rt.data_dir, dirs, set(candidates) - frameworks.SOURCE_DIRS,
                                     [rt.layout.tmp / f"home-{v.version_id}"], LOW_DISK_BYTES)
    except (OSError, isolation.UnsafeLayout):
        return message
    return f"{message} (the data dir's disk is full: {free // 1024} KiB free; removed the build's " \
           f"{', '.join(removed)})"


def drop_caches(dirs: isolation.ProjectDirs, say: Callable[[str], None]) -> None:
    """After a disk_limit: empty what the project keeps between builds besides its sources (its cache and
    node_modules' cache dirs), so the flood leaves the disk and the project's next build can start."""
    safepath.remove_tree(dirs.project, ["cache"])
    for d in isolation.CODE_CACHE_DIRS:
        safepath.remove_tree(dirs.work, ["node_modules", d])
    say("disk_limit: the project's caches were emptied")
