"""The outbox handlers over the embedded backends: payload shapes, deletes, and what gets parked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sync.handlers import kv_handler, objects_handler
from sync.kv import LocalKV
from sync.objects import LocalObjectStore
from sync.outbox import Outbox


def make(tmp_path: Path) -> tuple[Outbox, sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(str(tmp_path / "state.db"), timeout=30)

    conn = connect()
    Outbox.ensure_schema(conn)
    return Outbox(connect), conn


def test_kv_put_then_delete(tmp_path: Path) -> None:
    outbox, conn = make(tmp_path)
    kv = LocalKV(tmp_path / "kv.db")
    kv.put("gone", b"x")
    with conn:
        outbox.add(conn, "kv", "a", {"key": "a", "value": "1", "ttl": 60})
        outbox.add(conn, "kv", "gone", {"key": "gone", "delete": True})
    stats = outbox.drain({"kv": kv_handler(kv)})
    assert stats.sent == {"kv": 2}
    assert kv.get("a") == b"1" and kv.get("gone") is None


def test_kv_bad_payloads_are_parked(tmp_path: Path) -> None:
    outbox, conn = make(tmp_path)
    kv = LocalKV(tmp_path / "kv.db")
    with conn:
        outbox.add(conn, "kv", "a", {"key": "a", "value": "1", "ttl": 5})  # TTL below 60
        outbox.add(conn, "kv", "b", {"key": "b"})  # neither value nor delete
        outbox.add(conn, "kv", "c", {"key": "c", "value": "3", "ttl": None})
    stats = outbox.drain({"kv": kv_handler(kv)})
    assert stats.sent == {"kv": 1} and stats.dead == {"kv": 2}
    assert kv.keys() == ["c"]
    assert sorted(i.key for i, _ in outbox.dead_items()) == ["a", "b"]


def test_objects_upload_and_missing_file_parked(tmp_path: Path) -> None:
    outbox, conn = make(tmp_path)
    store = LocalObjectStore(tmp_path / "o")
    (tmp_path / "a.zip").write_bytes(b"a")
    with conn:
        outbox.add(conn, "objects", "u/a.zip", {"key": "u/a.zip", "path": str(tmp_path / "missing.zip")})
        outbox.add(conn, "objects", "u/b.zip", {"key": "u/b.zip", "path": str(tmp_path / "a.zip")})
        outbox.add(conn, "objects", "../x", {"key": "../x", "path": str(tmp_path / "a.zip")})
    stats = outbox.drain({"objects": objects_handler(store)})
    assert stats.sent == {"objects": 1} and stats.dead == {"objects": 2}
    assert store.list() == ["u/b.zip"]
    errors = {i.key: e for i, e in outbox.dead_items()}
    assert "missing.zip" in errors["u/a.zip"] and "invalid_key" in errors["../x"]
