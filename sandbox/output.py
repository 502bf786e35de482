"""Output accounting: what a step has written under a directory, by lstat, never following links."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

# Every inode costs at least one block, so a million empty files count as ~4 GB, not 0.
MIN_INODE_BYTES = 4096


def disk_usage(root: Path, exclude: Iterable[str] = ()) -> int:
    """Bytes used under root: max(st_blocks * 512, 4 KiB) per inode, skipping excluded dirs.

    `exclude` entries match a directory's name at any depth ("node_modules") or its path relative to
    root ("dist/cache"; a leading "/" anchors a single name at the root: "/node_modules"). Symlinks are
    counted as themselves and never followed; unreadable dirs count 0.
    """
    names = {e for e in exclude if "/" not in e}
    paths = {e.strip("/") for e in exclude if "/" in e}
    total = 0
    stack = [(str(root), "")]
    while stack:
        path, rel = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue
        with it:
            for entry in it:
                rel_child = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir and (entry.name in names or rel_child in paths):
                    continue
                total += max(st.st_blocks * 512, MIN_INODE_BYTES)
                if is_dir:
                    stack.append((entry.path, rel_child))
    return total


def file_bytes(root: Path) -> int:
    """Apparent bytes of the regular files under root (links never followed, vanishing files skipped); 0 when
    absent. What a size limit or a report means by "size", where `disk_usage` is what the disk pays."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
