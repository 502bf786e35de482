"""Space back after a build failed on a full data disk: what the failed build left in its project is removed in
steps (its output, its caches, whatever it wrote beside the sources, its node_modules) until there is room to
record the failure. Without it a build that fills the disk outside its output dir leaves the version `building`
and every later write of every tenant answering 503 disk_full until an operator steps in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from daemon.core import diskspace
from daemon.project import isolation
from sandbox import safepath

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
