"""LocalKV: the embedded KV backend, a SQLite table whose rows carry an expiry time."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sync.kv.base import validate_key, validate_ttl


class LocalKV:
    """KV in a SQLite file (WAL); expired rows read as absent and are purged lazily on writes."""

    name = "local"

    def __init__(self, db_path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.db_path = Path(db_path)
        self._clock = clock
        self._lock = threading.Lock()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.db_path), timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL)")
        # A second connection for get_nowait: an event loop must never queue behind a writer's lock.
        self._read_lock = threading.Lock()
        self._read_conn: sqlite3.Connection | None = None

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def get(self, key: str) -> bytes | None:
        """Return the value, or None when missing or expired."""
        validate_key(key)
        with self._db() as db:
            row = db.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, self._clock()),
            ).fetchone()
        return bytes(row[0]) if row else None

    def get_nowait(self, key: str) -> bytes | None:
        """Like get, for an event loop: a WAL read that never waits; BlockingIOError when it would have to."""
        validate_key(key)
        if not self._read_lock.acquire(blocking=False):
            raise BlockingIOError("the KV read connection is busy")
        try:
            if self._read_conn is None:
                self._read_conn = sqlite3.connect(str(self.db_path), timeout=0, isolation_level=None,
                                                  check_same_thread=False)
            row = self._read_conn.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, self._clock()),
            ).fetchone()
        except sqlite3.OperationalError as exc:  # busy or locked: the caller retries in a thread
            raise BlockingIOError(str(exc)) from exc
        finally:
            self._read_lock.release()
        return bytes(row[0]) if row else None

    def put(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        """Store ``value``; with a TTL it expires ``ttl_seconds`` from now."""
        validate_key(key)
        ttl = validate_ttl(ttl_seconds)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValueError("a KV value must be bytes")
        now = self._clock()
        expires = None if ttl is None else now + ttl
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
                db.execute(
                    "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                    (key, bytes(value), expires),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is fine."""
        validate_key(key)
        with self._db() as db:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))

    def keys(self, prefix: str = "") -> list[str]:
        """Return live keys starting with ``prefix``, sorted."""
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        with self._db() as db:
            rows = db.execute(
                "SELECT key FROM kv WHERE substr(key, 1, ?) = ? AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY key",
                (len(prefix), prefix, self._clock()),
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._conn.close()
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None
