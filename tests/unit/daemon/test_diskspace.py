"""The full-disk pieces without a full disk: the reserve check, the named filesystem, the in-memory nonce fallback."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import peewee
import pytest

from daemon.core import diskspace
from daemon.core.nonces import MemoryNonces


def test_reserve_refuses_below_it_and_names_the_filesystem(tmp_path: Path) -> None:
    diskspace.check_reserve(tmp_path, 0)  # no reserve
    diskspace.check_reserve(tmp_path, 1)  # this disk has a byte free
    with pytest.raises(diskspace.DiskFull) as caught:
        diskspace.check_reserve(tmp_path, 2**62)
    err = caught.value
    assert err.status == 503 and err.code == "disk_full"
    assert err.extra["filesystem"] == diskspace.mount_point(tmp_path) and os.path.ismount(err.extra["filesystem"])
    assert err.extra["reserveBytes"] == 2**62 and err.headers["Retry-After"] == str(diskspace.RETRY_AFTER_S)


def test_mount_point_of_a_path_not_made_yet(tmp_path: Path) -> None:
    assert diskspace.mount_point(tmp_path / "not" / "yet") == diskspace.mount_point(tmp_path)


def test_wrapped_space_errors_are_recognised() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    wrapped = peewee.OperationalError(full)  # peewee keeps the original as `orig`
    assert diskspace.is_disk_full(wrapped)
    try:  # SQLite rolled back on its own, so peewee's rollback fails: the space error is its context
        try:
            raise full
        except sqlite3.OperationalError:
            raise peewee.OperationalError("cannot rollback - no transaction is active") from None
    except peewee.OperationalError as exc:
        assert not diskspace.is_disk_full(exc)  # `from None` hides the context: no guessing
    try:
        try:
            raise full
        except sqlite3.OperationalError:
            raise peewee.OperationalError("cannot rollback - no transaction is active")  # noqa: B904
    except peewee.OperationalError as exc:
        assert diskspace.is_disk_full(exc)
    assert diskspace.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not diskspace.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not diskspace.is_disk_full(sqlite3.OperationalError("database is locked"))


def test_io_error_counts_only_on_a_nearly_full_disk(tmp_path: Path) -> None:
    io = peewee.OperationalError(sqlite3.OperationalError("disk I/O error"))
    assert diskspace.is_io_error(io)
    assert not diskspace.caused_by_full_disk(io, tmp_path)  # this disk has room: an I/O error is not "full"


def test_memory_nonces_refuse_a_replay_and_stay_bounded() -> None:
    seen = MemoryNonces(max_items=2)
    assert seen.add("a", expires_at=100.0, now=0.0) is True
    assert seen.add("a", expires_at=100.0, now=1.0) is False  # a replay
    assert seen.seen("a", now=1.0) and not seen.seen("a", now=101.0)
    assert seen.add("b", expires_at=100.0, now=1.0) is True
    assert seen.add("c", expires_at=100.0, now=1.0) is None  # full: nothing recorded, the caller refuses
    assert seen.add("c", expires_at=300.0, now=150.0) is True  # stale ones make room
    assert len(seen) == 1
