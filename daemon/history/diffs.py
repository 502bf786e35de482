"""Diffs between two source trees in three shapes: unified patch, per-file stat, changed-path list."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dulwich.diff_tree import CHANGE_ADD, CHANGE_DELETE, tree_changes
from dulwich.object_store import BaseObjectStore
from dulwich.objects import ObjectID
from dulwich.patch import is_binary, write_object_diff

from daemon.history.budget import Meter, object_size

DiffMode = Literal["patch", "stat", "files"]
_CHANGE_NAMES = {CHANGE_ADD: "added", CHANGE_DELETE: "deleted"}


@dataclass(frozen=True)
class FileDiff:
    """One changed path, its change kind and its git-style patch text."""

    path: str
    change: str  # "added" | "modified" | "deleted"
    patch: bytes
    binary: bool

    def counts(self) -> tuple[int, int]:
        """(insertions, deletions) counted from the hunks; headers before the first @@ are not lines."""
        ins = dels = 0
        in_hunks = False
        for line in self.patch.splitlines():
            if line.startswith(b"@@"):
                in_hunks = True
            elif in_hunks and line.startswith(b"+"):
                ins += 1
            elif in_hunks and line.startswith(b"-"):
                dels += 1
        return ins, dels


def _excluded(path: str, exclude_dirs: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in exclude_dirs)


def file_diffs(
    store: BaseObjectStore, old_tree: ObjectID, new_tree: ObjectID, exclude_dirs: Sequence[str],
    meter: Meter | None = None,
) -> Iterator[FileDiff]:
    """Yield a FileDiff per changed file, sorted by path, skipping paths under `exclude_dirs`.

    With a `meter`, both sides of every change are charged to it before any is read.
    """
    changes = []
    for change in tree_changes(store, old_tree, new_tree):
        entry = change.new if change.type == CHANGE_ADD else change.old
        assert entry is not None and entry.path is not None
        path = os.fsdecode(entry.path)
        if not _excluded(path, exclude_dirs):
            changes.append((path, change))
    changes.sort(key=lambda pc: pc[0])
    if meter is not None:
        for path, change in changes:
            for side in (change.old, change.new):
                if side is not None and side.sha is not None:
                    meter.charge(object_size(store, side.sha), name=path)  # type: ignore[arg-type]
    for path, change in changes:
        old = (change.old.path, change.old.mode, change.old.sha) if change.old else (None, None, None)
        new = (change.new.path, change.new.mode, change.new.sha) if change.new else (None, None, None)
        buf = io.BytesIO()
        write_object_diff(buf, store, old, new)  # type: ignore[arg-type]
        binary = any(sha is not None and is_binary(store[sha].as_raw_string()) for sha in (old[2], new[2]))
        yield FileDiff(path, _CHANGE_NAMES.get(change.type, "modified"), buf.getvalue(), binary)


def render(diffs: Iterator[FileDiff], mode: DiffMode) -> str | dict[str, Any] | list[dict[str, str]]:
    """Shape the diffs: patch -> str, stat -> dict, files -> list (see ProjectRepo.diff)."""
    if mode == "patch":
        return b"".join(d.patch for d in diffs).decode("utf-8", errors="replace")
    if mode == "files":
        return [{"path": d.path, "change": d.change} for d in diffs]
    files = []
    for d in diffs:
        ins, dels = (0, 0) if d.binary else d.counts()
        files.append({"path": d.path, "change": d.change, "insertions": ins, "deletions": dels, "binary": d.binary})
    return {
        "files": files,
        "filesChanged": len(files),
        "insertions": sum(f["insertions"] for f in files),
        "deletions": sum(f["deletions"] for f in files),
    }
