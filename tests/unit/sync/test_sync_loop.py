"""SyncLoop with the embedded backends: drains on nudge, survives a failing drain, flushes on demand."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.handlers import kv_handler, objects_handler
from sync.kv import LocalKV
from sync.loop import SyncLoop
from sync.objects import LocalObjectStore
from sync.outbox import Outbox
from tests.support import wait_until


def make(tmp_path: Path) -> tuple[Outbox, Callable[[], sqlite3.Connection]]:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(str(tmp_path / "state.db"), timeout=30)

    conn = connect()
    Outbox.ensure_schema(conn)
    conn.close()
    return Outbox(connect, base_backoff_s=0.01, max_backoff_s=0.05), connect


def test_nudge_drains_without_waiting_for_the_tick(tmp_path: Path) -> None:
    outbox, connect = make(tmp_path)
    kv = LocalKV(tmp_path / "kv.db")
    loop = SyncLoop(outbox, {"kv": kv_handler(kv)}, interval_s=3600)  # the tick alone would never come
    loop.start()
    loop.start()  # idempotent
    try:
        wait_until(lambda: loop.last_stats is not None)  # the first pass at start-up
        conn = connect()
        with conn:
            outbox.add(conn, "kv", "u:p", {"key": "u:p", "value": "hello", "ttl": 120})
        conn.close()
        loop.nudge()
        wait_until(lambda: kv.get("u:p") == b"hello")
    finally:
        loop.stop()
    assert outbox.pending() == 0


def test_loop_survives_a_broken_drain(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good, _ = make(tmp_path)
    calls = {"n": 0}
    healed = threading.Event()

    def flaky_connect() -> sqlite3.Connection:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sqlite3.OperationalError("disk I/O error")
        healed.set()
        return good._connect()

    outbox = Outbox(flaky_connect)
    loop = SyncLoop(outbox, {}, interval_s=0.01, max_backoff_s=0.05)
    loop.start()
    try:
        assert healed.wait(20)
    finally:
        loop.stop()
    assert "drain failed" in caplog.text


def test_failed_drains_back_off_doubling_from_twice_the_tick_to_the_cap_then_reset(
        caplog: pytest.LogCaptureFixture) -> None:
    loop: SyncLoop
    results = [RuntimeError("down")] * 6 + [None] + [RuntimeError("down")] * 2

    class Flaky:
        def drain(self, handlers: object, *, max_batch: int) -> None:
            outcome = results.pop(0)
            if not results:
                loop._stop.set()  # the last call: stop() during a failure streak ends the loop
            if outcome is not None:
                raise outcome

    loop = SyncLoop(Flaky(), {}, interval_s=1.0, max_backoff_s=10.0)  # type: ignore[arg-type]
    waits: list[float] = []
    loop._pause = waits.append  # type: ignore[method-assign]
    loop._run()
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 1.0, 2.0]  # a success waits one tick and resets the streak
    assert "drain failed (6 in a row), next try in 10.0s" in caplog.text


def test_flush_uploads_now_and_reports(tmp_path: Path) -> None:
    outbox, connect = make(tmp_path)
    store = LocalObjectStore(tmp_path / "objects")
    src = tmp_path / "a.zip"
    src.write_bytes(b"zip")
    conn = connect()
    with conn:
        for n in range(3):
            key = f"u/p/snapshots/v{n}.zip"
            outbox.add(conn, "objects", key, {"key": key, "path": str(src), "content_type": None, "version_id": n})
    conn.close()
    loop = SyncLoop(outbox, {"objects": objects_handler(store)})
    stats = loop.flush(timeout_s=10)
    assert stats.sent == {"objects": 3} and stats.errors == {}
    assert store.list("u/p/") == [f"u/p/snapshots/v{n}.zip" for n in range(3)]


def test_flush_gives_up_at_the_timeout_and_says_why(tmp_path: Path) -> None:
    outbox, connect = make(tmp_path)
    conn = connect()
    with conn:
        outbox.add(conn, "kv", "k", {"key": "k", "value": "v"})
    conn.close()

    def down(items: object) -> None:
        raise ConnectionError("KV unreachable")

    stats = SyncLoop(outbox, {"kv": down}).flush(timeout_s=0.3)
    assert "KV unreachable" in stats.errors["kv"] and outbox.pending() == 1


def test_interval_must_be_positive(tmp_path: Path) -> None:
    outbox, _ = make(tmp_path)
    with pytest.raises(ValueError):
        SyncLoop(outbox, {}, interval_s=0)
