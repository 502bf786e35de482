"""Replay guard for v2 signatures: each one is accepted once, remembered in state.db until it goes stale."""

from __future__ import annotations

import threading
import time

from daemon.core.db import database

PRUNE_EVERY_S = 60.0
MEMORY_MAX = 100_000  # signatures held in memory while the disk is full (about 10 MB at most)

_SCHEMA = ("CREATE TABLE IF NOT EXISTS seen_signatures (signature TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
           "CREATE INDEX IF NOT EXISTS seen_signatures_expires ON seen_signatures (expires_at)")
_pruned_at = 0.0
_prune_lock = threading.Lock()


def ensure_schema() -> None:
    """Create the table (idempotent). In state.db, not in memory, so a restart does not reopen the window."""
    with database.connection_context():
        for sql in _SCHEMA:
            database.execute_sql(sql)


class MemoryNonces:
    """Signatures accepted while state.db could not be written (a full disk), kept in memory until they go stale,
    so a replay is still refused by this process. Bounded: past `max_items` live entries it refuses to take more."""

    def __init__(self, max_items: int = MEMORY_MAX) -> None:
        self.max_items = max_items
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, signature: str, now: float | None = None) -> bool:
        """Whether the signature was accepted in memory and has not gone stale."""
        t = time.time() if now is None else now
        with self._lock:
            exp = self._seen.get(signature)
            return exp is not None and exp >= t

    def add(self, signature: str, expires_at: float, now: float | None = None) -> bool | None:
        """Record a signature; False when seen before (a replay), None when full (nothing recorded)."""
        t = time.time() if now is None else now
        with self._lock:
            exp = self._seen.get(signature)
            if exp is not None and exp >= t:
                return False
            if len(self._seen) >= self.max_items:
                for k in [k for k, e in self._seen.items() if e < t]:
                    del self._seen[k]
                if len(self._seen) >= self.max_items:
                    return None
            self._seen[signature] = expires_at
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


in_memory = MemoryNonces()


def remember(signature: str, expires_at: float, now: float | None = None) -> bool:
    """Record a signature; False when it was seen before (a replay). Call inside the caller's transaction."""
    global _pruned_at
    t = time.time() if now is None else now
    if in_memory.seen(signature, t):  # accepted while the disk was full, so never written to the table
        return False
    with _prune_lock:
        prune = t - _pruned_at >= PRUNE_EVERY_S
        if prune:
            _pruned_at = t
    if prune:  # past expires_at the timestamp check refuses the signature anyway, so the row is no longer needed
        database.execute_sql("DELETE FROM seen_signatures WHERE expires_at < ?", (t,))
    cur = database.execute_sql("INSERT OR IGNORE INTO seen_signatures (signature, expires_at) VALUES (?, ?)",
                               (signature, expires_at))
    return bool(cur.rowcount)


def count() -> int:
    """Signatures remembered now (tests, status)."""
    return int(database.execute_sql("SELECT COUNT(*) FROM seen_signatures").fetchone()[0])
