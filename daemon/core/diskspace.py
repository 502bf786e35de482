"""A full disk as a named condition: recognise what a full filesystem raises, name the filesystem, and the reserve
below which new builds are refused (503 `disk_full` with Retry-After, never a 500)."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daemon.core.errors import Unavailable

RETRY_AFTER_S = 60  # space comes back when an operator or the nightly cleanup frees it: minutes, not seconds
NEARLY_FULL_BYTES = 2**20  # below this, an I/O error from SQLite is taken for the full disk it almost surely is
_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13
_SQLITE_IOERR = 10


class DiskFull(Unavailable):
    """503 `disk_full`: a write failed (or a build was refused) for want of space; names the filesystem."""

    code = "disk_full"

    def __init__(self, message: str, *, filesystem: str, free_bytes: int, **extra: Any) -> None:
        super().__init__(message, filesystem=filesystem, freeBytes=free_bytes, retry_after=RETRY_AFTER_S, **extra)


def mount_point(path: str | Path) -> str:
    """The mount point of the filesystem holding `path` (its nearest existing ancestor)."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        p = os.path.dirname(p)
    while not os.path.ismount(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`; -1 when it cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what caused it, and what peewee wrapped (`orig`), each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        context = None if e.__suppress_context__ else e.__context__  # `raise ... from None` disowns it
        for nxt in (e.__cause__, context, getattr(e, "orig", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _sqlite_code(e: BaseException) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_disk_full(exc: BaseException) -> bool:
    """True when the error (or one it wraps) is a write refused for space: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL
    ("database or disk is full"), also when peewee re-raised it as its own OperationalError."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _SPACE_ERRNOS:
            return True
        text = str(e)
        if _sqlite_code(e) == _SQLITE_FULL or "database or disk is full" in text:
            return True
        if any(os.strerror(n) in text for n in _SPACE_ERRNOS):  # re-raised as text (`DeployError(f"...{exc}")`)
            return True
    return False


def is_io_error(exc: BaseException) -> bool:
    """True for SQLite's generic "disk I/O error" (some full-disk paths in SQLite report it instead of FULL)."""
    for e in _chain(exc):
        if _sqlite_code(e) == _SQLITE_IOERR or (isinstance(e, sqlite3.Error | OSError)
                                                 and "disk I/O error" in str(e)):
            return True
        if type(e).__name__ == "OperationalError" and "disk I/O error" in str(e):
            return True
    return False


def caused_by_full_disk(exc: BaseException, data_dir: str | Path) -> bool:
    """A write refused for space, or an SQLite I/O error while the data dir's filesystem is (nearly) full."""
    if is_disk_full(exc):
        return True
    return is_io_error(exc) and 0 <= free_bytes(data_dir) < NEARLY_FULL_BYTES


def _where(exc: BaseException | None, data_dir: str | Path) -> str:
    """The path whose filesystem is full: the file an OSError names when there is one, else the data dir."""
    for e in _chain(exc) if exc is not None else ():
        if isinstance(e, OSError) and e.errno in _SPACE_ERRNOS and isinstance(e.filename, str) and e.filename:
            return e.filename
    return str(data_dir)


def disk_full(data_dir: str | Path, exc: BaseException | None = None, *, what: str = "the write") -> DiskFull:
    """The 503 for a write that failed for space, naming the filesystem and its free space."""
    fs = mount_point(_where(exc, data_dir))
    free = max(0, free_bytes(fs))
    return DiskFull(f"{what} failed: the filesystem {fs} (the data dir's) is full ({free // 1024} KiB free); "
                    "free space there and retry", filesystem=fs, free_bytes=free)


def check_reserve(data_dir: str | Path, reserve_bytes: int, *, what: str = "new builds") -> None:
    """Refuse (503 disk_full) while the data dir's filesystem has less free space than the reserve, so the
    writes that record versions, undo and replay state still find room."""
    if reserve_bytes <= 0:
        return
    free = free_bytes(data_dir)
    if 0 <= free < reserve_bytes:
        fs = mount_point(data_dir)
        raise DiskFull(f"{what} are refused: the filesystem {fs} (the data dir's) has {free // 2**20} MiB free, "
                       f"below the reserve of {reserve_bytes // 2**20} MiB ([limits] disk_reserve_mb); free space "
                       "there and retry", filesystem=fs, free_bytes=free, reserveBytes=reserve_bytes)


def report(data_dir: str | Path, reserve_bytes: int) -> dict[str, Any]:
    """The data dir's filesystem for health detail: where, how much is free, the reserve, and whether it is full."""
    free = free_bytes(data_dir)
    return {"filesystem": mount_point(data_dir), "freeBytes": free, "reserveBytes": reserve_bytes,
            "belowReserve": 0 <= free < reserve_bytes}
