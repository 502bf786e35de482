"""Outbox logic on a real SQLite file: same-transaction adds, FIFO, coalescing, backoff, parking, on_done."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.errors import BatchFailure, RemoteError
from sync.outbox import Outbox, OutboxItem


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def factory(path: Path) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    return connect


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Outbox:
    connect = factory(tmp_path / "state.db")
    conn = connect()
    Outbox.ensure_schema(conn)
    Outbox.ensure_schema(conn)  # idempotent
    conn.close()
    return Outbox(connect, clock=clock, base_backoff_s=2.0, max_backoff_s=60.0)


def add(outbox: Outbox, dest: str, key: str, payload: dict[str, Any]) -> int:
    conn = outbox._connect()
    with conn:
        item_id = outbox.add(conn, dest, key, payload)
    conn.close()
    return item_id


class Recorder:
    """A handler that records what it got and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[OutboxItem]] = []
        self.fail: BaseException | None = None

    def __call__(self, items: list[OutboxItem]) -> None:
        self.batches.append(items)
        if self.fail is not None:
            raise self.fail

    @property
    def keys(self) -> list[str]:
        return [i.key for b in self.batches for i in b]


def test_add_rides_the_callers_transaction(outbox: Outbox) -> None:
    conn = outbox._connect()
    conn.execute("CREATE TABLE versions (id TEXT)")
    with pytest.raises(RuntimeError), conn:
        conn.execute("INSERT INTO versions VALUES ('v1')")
        outbox.add(conn, "replica", "v1", {"x": 1})
        raise RuntimeError("the row change failed")
    assert conn.execute("SELECT count(*) FROM versions").fetchone() == (0,)
    assert outbox.pending() == 0  # rolled back together with the row
    with conn:
        conn.execute("INSERT INTO versions VALUES ('v1')")
        outbox.add(conn, "replica", "v1", {"x": 1})
    conn.close()
    assert outbox.pending() == 1


@pytest.mark.parametrize(
    ("dest", "key", "payload"),
    [("", "k", {}), ("kv", "", {}), ("kv", "k", []), ("kv", "k", {"x": object()}), ("kv", "k", {"x": float("nan")})],
)
def test_add_refuses_bad_input(outbox: Outbox, dest: str, key: str, payload: Any) -> None:
    conn = outbox._connect()
    with pytest.raises(ValueError):
        outbox.add(conn, dest, key, payload)
    conn.close()


def test_fifo_per_destination_and_deleted_after_success(outbox: Outbox) -> None:
    for i in range(5):
        add(outbox, "objects", f"o{i}", {"n": i})
    rec = Recorder()
    stats = outbox.drain({"objects": rec}, max_batch=2)
    assert rec.keys == ["o0", "o1", "o2", "o3", "o4"]
    assert [len(b) for b in rec.batches] == [2, 2, 1]
    assert stats.sent == {"objects": 5} and outbox.pending() == 0


def test_kv_coalesces_to_the_newest_value(outbox: Outbox) -> None:
    for v in ("a", "b", "c"):
        add(outbox, "kv", "u:p", {"key": "u:p", "value": v})
    add(outbox, "kv", "u:q", {"key": "u:q", "value": "z"})
    rec = Recorder()
    stats = outbox.drain({"kv": rec})
    assert [(i.key, i.payload["value"]) for i in rec.batches[0]] == [("u:p", "c"), ("u:q", "z")]
    assert stats.sent == {"kv": 4} and outbox.pending() == 0


def test_replica_coalesces_to_the_highest_row_version(outbox: Outbox) -> None:
    add(outbox, "replica", "v1", {"version_id": "v1", "row_version": 3})
    add(outbox, "replica", "v1", {"version_id": "v1", "row_version": 5})
    add(outbox, "replica", "v1", {"version_id": "v1", "row_version": 4})  # written late, older state
    add(outbox, "replica", "v2", {"version_id": "v2", "row_version": 1})
    add(outbox, "replica", "v2", {"delete": "v2"})
    rec = Recorder()
    outbox.drain({"replica": rec})
    sent = {i.key: i.payload for i in rec.batches[0]}
    assert sent == {"v1": {"version_id": "v1", "row_version": 5}, "v2": {"delete": "v2"}}
    assert outbox.pending() == 0


def test_failure_keeps_items_and_backs_off_that_destination_only(outbox: Outbox, clock: Clock) -> None:
    add(outbox, "replica", "v1", {"row_version": 1})
    add(outbox, "kv", "k", {"value": "x"})
    stuck, fine = Recorder(), Recorder()
    stuck.fail = RemoteError("down", operation="pg upsert", retryable=True)
    stats = outbox.drain({"replica": stuck, "kv": fine})
    assert stats.sent == {"kv": 1} and "down" in stats.errors["replica"]
    back = outbox.backlog()["replica"]
    assert back["pending"] == 1 and back["attempts"] == 1 and "down" in back["last_error"]
    assert 1.0 <= back["next_attempt_in_s"] <= 2.0  # base 2 s with jitter in [0.5, 1]
    # while backing off the destination is skipped, not hammered
    assert outbox.drain({"replica": stuck}).deferred == ["replica"] and len(stuck.batches) == 1
    clock.now += 2.0
    outbox.drain({"replica": stuck})
    back = outbox.backlog()["replica"]
    assert back["attempts"] == 2 and 2.0 <= back["next_attempt_in_s"] <= 4.0  # doubled
    for _ in range(10):
        clock.now += 1000
        outbox.drain({"replica": stuck})
    assert outbox.backlog()["replica"]["next_attempt_in_s"] <= 60.0  # capped
    stuck.fail = None
    clock.now += 1000
    assert outbox.drain({"replica": stuck}).sent == {"replica": 1}
    back = outbox.backlog()["replica"]
    assert back["pending"] == 0 and back["attempts"] == 0 and back["last_error"] is None


def test_retry_after_sets_the_floor(outbox: Outbox) -> None:
    add(outbox, "kv", "k", {"value": "x"})
    rec = Recorder()
    rec.fail = RemoteError("429", operation="kv put", retryable=True, retry_after=30.0)
    outbox.drain({"kv": rec})
    assert outbox.backlog()["kv"]["next_attempt_in_s"] >= 30.0


def test_force_ignores_backoff(outbox: Outbox) -> None:
    add(outbox, "kv", "k", {"value": "x"})
    rec = Recorder()
    rec.fail = RuntimeError("boom")
    outbox.drain({"kv": rec})
    rec.fail = None
    assert outbox.drain({"kv": rec}).deferred == ["kv"]
    assert outbox.drain({"kv": rec}, force=True).sent == {"kv": 1}


def test_partial_batch_deletes_only_what_went_through(outbox: Outbox) -> None:
    ids = [add(outbox, "objects", f"o{i}", {"n": i}) for i in range(4)]

    def handler(items: list[OutboxItem]) -> None:
        raise BatchFailure(RemoteError("500", operation="s3 put", retryable=True), done_ids=ids[:2])

    stats = outbox.drain({"objects": handler})
    assert stats.sent == {"objects": 2} and outbox.pending() == 2
    rec = Recorder()
    outbox.drain({"objects": rec}, force=True)
    assert rec.keys == ["o2", "o3"]


def test_poison_item_is_parked_and_the_line_moves_on(outbox: Outbox) -> None:
    ids = [add(outbox, "objects", f"o{i}", {"n": i}) for i in range(4)]
    seen: list[str] = []

    def handler(items: list[OutboxItem]) -> None:
        seen.extend(i.key for i in items)
        if items[0].id <= ids[1]:
            raise BatchFailure(FileNotFoundError("gone"), done_ids=[ids[0]], poison_id=ids[1])

    stats = outbox.drain({"objects": handler})
    assert stats.sent == {"objects": 3} and stats.dead == {"objects": 1}
    assert seen == ["o0", "o1", "o2", "o3", "o2", "o3"]
    dead = outbox.dead_items("objects")
    assert [(i.key, err) for i, err in dead] == [("o1", "gone")]
    back = outbox.backlog()["objects"]
    assert back["pending"] == 0 and back["dead"] == 1
    assert outbox.requeue_dead("objects") == 1 and outbox.pending() == 1


def test_on_done_runs_in_the_delete_transaction(outbox: Outbox, tmp_path: Path) -> None:
    conn = outbox._connect()
    conn.execute("CREATE TABLE versions (id TEXT PRIMARY KEY, artifact_url TEXT)")
    conn.execute("INSERT INTO versions VALUES ('v1', NULL)")
    conn.commit()
    conn.close()
    add(outbox, "objects", "u/p/snapshots/v1.zip", {"key": "u/p/snapshots/v1.zip", "version_id": "v1"})
    calls: list[str] = []

    def on_done(conn: sqlite3.Connection, dest: str, items: list[OutboxItem]) -> None:
        calls.append(dest)
        for item in items:
            conn.execute(
                "UPDATE versions SET artifact_url = ? WHERE id = ?",
                (f"file:///{item.payload['key']}", item.payload["version_id"]),
            )
        if len(calls) == 1:
            raise RuntimeError("daemon hiccup")  # the first time: nothing may stick

    outbox.on_done = on_done
    stats = outbox.drain({"objects": Recorder()})
    assert stats.sent == {} and "daemon hiccup" in stats.errors["objects"] and outbox.pending() == 1
    check = outbox._connect()
    assert check.execute("SELECT artifact_url FROM versions").fetchone() == (None,)
    stats = outbox.drain({"objects": Recorder()}, force=True)
    assert stats.sent == {"objects": 1} and outbox.pending() == 0
    assert check.execute("SELECT artifact_url FROM versions").fetchone() == ("file:///u/p/snapshots/v1.zip",)
    assert [i.payload["version_id"] for i in stats.confirmed] == ["v1"]
    check.close()


def test_destinations_without_a_handler_wait(outbox: Outbox, clock: Clock) -> None:
    add(outbox, "replica", "v1", {"row_version": 1})
    clock.now += 12.5
    stats = outbox.drain({})
    assert stats.sent == {} and outbox.pending() == 1
    back = outbox.backlog()["replica"]
    assert back["oldest_age_s"] == 12.5 and back["last_error"] is None


def test_max_batch_must_be_positive(outbox: Outbox) -> None:
    with pytest.raises(ValueError):
        outbox.drain({}, max_batch=0)
