"""Replay guard for v2 signatures: each one is accepted once, remembered in state.db until it goes stale."""

from __future__ import annotations

import threading
import time

from daemon.core.db import database

PRUNE_EVERY_S = 60.0

_SCHEMA = ("CREATE TABLE IF NOT EXISTS seen_signatures (signature TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
           "CREATE INDEX IF NOT EXISTS seen_signatures_expires ON seen_signatures (expires_at)")
_pruned_at = 0.0
_prune_lock = threading.Lock()


def ensure_schema() -> None:
    """Create the table (idempotent). In state.db, not in memory, so a restart does not reopen the window."""
    with database.connection_context():
        for sql in _SCHEMA:
            database.execute_sql(sql)


def remember(signature: str, expires_at: float, now: float | None = None) -> bool:
    """Record a signature; False when it was seen before (a replay). Call inside the caller's transaction."""
    global _pruned_at
    t = time.time() if now is None else now
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
