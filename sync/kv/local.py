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
    answers_locally = True

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
        # get_nowait's cache (value, expires_at) per key: every write here bumps _gen and drops the key, and a
        # read caches only when no write happened meanwhile. This process is kv.db's only writer.
        self._hot: dict[str, tuple[bytes | None, float | None]] = {}
        self._hot_lock = threading.Lock()
        self._gen = 0

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
        """Like get, for an event loop: served from memory after the first read (a SQLite call per request costs
        the event loop GIL hand-offs: p99 33 ms against 5 ms in bench/load.py); BlockingIOError when it would wait."""
        validate_key(key)
        hit = self._hot.get(key)
        if hit is not None:
            value, expires = hit
            return value if expires is None or expires > self._clock() else None
        gen = self._gen
        if not self._read_lock.acquire(blocking=False):
            raise BlockingIOError("the KV read connection is busy")
        try:
            if self._read_conn is None:
                self._read_conn = sqlite3.connect(str(self.db_path), timeout=0, isolation_level=None,
                                                  check_same_thread=False)
            row = self._read_conn.execute(
                "SELECT value, expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                (key, self._clock()),
            ).fetchone()
        except sqlite3.OperationalError as exc:  # busy or locked: the caller retries in a thread
            raise BlockingIOError(str(exc)) from exc
        finally:
            self._read_lock.release()
        value = bytes(row[0]) if row else None
        with self._hot_lock:
            if self._gen == gen:
                if len(self._hot) >= 10000:
                    self._hot.clear()
                self._hot[key] = (value, row[1] if row else None)
        return value

    def _forget(self, key: str) -> None:
        """After a write: drop the cached key, and make reads that started before it not cache what they read."""
        with self._hot_lock:
            self._gen += 1
            self._hot.pop(key, None)

    def put(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        """Store ``value``; with a TTL it expires ``ttl_seconds`` from now."""
        validate_key(key)
        ttl = validate_ttl(ttl_seconds)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValueError("a KV value must be bytes")
        now = self._clock()
        expires = None if ttl is None else now + ttl
        try:
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
        finally:
            self._forget(key)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is fine."""
        validate_key(key)
        try:
            with self._db() as db:
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
        finally:
            self._forget(key)

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
        self._hot.clear()
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None
