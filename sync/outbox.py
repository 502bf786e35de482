"""The outbox: changes waiting to go out, kept in the daemon's SQLite file and drained with retries.

The daemon calls ``Outbox.add`` on its own connection inside the transaction that changes the row, so a row
change and its outbox entry commit together or not at all. ``drain`` hands each destination's items, oldest
first, to that destination's handler and deletes them only once the handler returned: a crash mid-batch
re-sends at most that batch, which idempotent handlers absorb.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sync.errors import BatchFailure, RemoteError

log = logging.getLogger(__name__)

Handler = Callable[[list["OutboxItem"]], None]
OnDone = Callable[[sqlite3.Connection, str, list["OutboxItem"]], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sync_outbox_dest ON sync_outbox (destination, dead, id);
CREATE TABLE IF NOT EXISTS sync_outbox_state (
    destination TEXT PRIMARY KEY,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_error_at REAL,
    last_success_at REAL
);
"""


@dataclass(frozen=True)
class OutboxItem:
    """One pending change: ``key`` is the version_id (replica), KV key (kv) or object key (objects)."""

    id: int
    destination: str
    key: str
    payload: dict[str, Any]
    created_at: float
    attempts: int
    superseded: tuple[int, ...] = ()  # older items for the same key that this one makes redundant


@dataclass
class DrainStats:
    """What one drain did: items confirmed (incl. coalesced ones) and errors per destination."""

    sent: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)  # destinations still backing off
    dead: dict[str, int] = field(default_factory=dict)  # items parked as undeliverable
    confirmed: list[OutboxItem] = field(default_factory=list)

    @property
    def total_sent(self) -> int:
        """Items confirmed across destinations."""
        return sum(self.sent.values())

    def merge(self, other: DrainStats) -> None:
        """Fold ``other`` into this one (``errors`` keeps the latest message)."""
        for dest, n in other.sent.items():
            self.sent[dest] = self.sent.get(dest, 0) + n
        for dest, n in other.dead.items():
            self.dead[dest] = self.dead.get(dest, 0) + n
        self.errors.update(other.errors)
        self.deferred = sorted(set(self.deferred) | set(other.deferred))
        self.confirmed.extend(other.confirmed)


def _rank(item: OutboxItem) -> tuple[int, int, int]:
    """Which of several items for one key wins: for the replica a delete, then the highest row_version."""
    if item.destination == "replica":
        if "delete" in item.payload:
            return (1, 0, item.id)
        rv = item.payload.get("row_version")
        return (0, rv if isinstance(rv, int) else -1, item.id)
    return (0, 0, item.id)


def coalesce(items: list[OutboxItem], destination: str) -> list[OutboxItem]:
    """One item per key for ``kv`` (newest) and ``replica`` (highest row_version); others pass."""
    if destination not in ("kv", "replica"):
        return items
    groups: dict[str, list[OutboxItem]] = {}
    for item in items:
        groups.setdefault(item.key, []).append(item)
    winners = []
    for group in groups.values():
        best = max(group, key=_rank)
        others = tuple(sorted(i.id for i in group if i.id != best.id))
        winners.append(
            OutboxItem(best.id, best.destination, best.key, best.payload, best.created_at, best.attempts, others)
        )
    return sorted(winners, key=lambda i: i.id)


class Outbox:
    """The outbox over the daemon's SQLite file; ``connect`` must return a new connection with pragmas set."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        on_done: OnDone | None = None,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self.on_done = on_done
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._drain_lock = threading.Lock()

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @staticmethod
    @contextmanager
    def _tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        if conn.in_transaction:
            conn.commit()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    @staticmethod
    def ensure_schema(conn: sqlite3.Connection) -> None:
        """Create the outbox tables on ``conn`` (idempotent; commits)."""
        conn.executescript(SCHEMA)

    def add(self, conn: sqlite3.Connection, destination: str, key: str, payload: dict[str, Any]) -> int:
        """Queue a change on the caller's connection, inside the caller's transaction (no commit here)."""
        if not isinstance(destination, str) or not destination:
            raise ValueError("outbox destination must be a non-empty string")
        if not isinstance(key, str) or not key:
            raise ValueError("outbox key must be a non-empty string")
        if not isinstance(payload, dict):
            raise ValueError("outbox payload must be a dict")
        try:
            text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"outbox payload is not JSON-serialisable: {exc}") from exc
        cur = conn.execute(
            "INSERT INTO sync_outbox (destination, key, payload, created_at) VALUES (?, ?, ?, ?)",
            (destination, key, text, self._clock()),
        )
        return int(cur.lastrowid or 0)

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        """Exponential backoff with full-ish jitter, never below the remote's Retry-After."""
        delay = min(self.max_backoff_s, self.base_backoff_s * 2 ** max(0, failures - 1))
        delay *= random.uniform(0.5, 1.0)
        return max(delay, retry_after or 0.0)

    def _load(self, conn: sqlite3.Connection, destination: str, limit: int) -> list[OutboxItem]:
        rows = conn.execute(
            "SELECT id, destination, key, payload, created_at, attempts FROM sync_outbox "
            "WHERE destination = ? AND dead = 0 ORDER BY id LIMIT ?",
            (destination, limit),
        ).fetchall()
        return [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def drain(
        self,
        handlers: Mapping[str, Handler],
        *,
        max_batch: int = 100,
        force: bool = False,
        max_batches: int | None = None,
    ) -> DrainStats:
        """Send pending items to their handlers until empty or a failure; ``force`` ignores the backoff."""
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        stats = DrainStats()
        with self._drain_lock, self._conn() as conn:
            now = self._clock()
            dests = [r[0] for r in conn.execute("SELECT DISTINCT destination FROM sync_outbox WHERE dead = 0")]
            waits = dict(conn.execute("SELECT destination, next_attempt_at FROM sync_outbox_state").fetchall())
            for dest in sorted(dests):
                handler = handlers.get(dest)
                if handler is None:
                    continue  # destination not configured here: its items wait
                if not force and waits.get(dest, 0) > now:
                    stats.deferred.append(dest)
                    continue
                batches = 0
                while max_batches is None or batches < max_batches:
                    batches += 1
                    items = self._load(conn, dest, max_batch)
                    if not items or not self._send(conn, dest, handler, items, stats):
                        break
        return stats

    def _send(
        self, conn: sqlite3.Connection, dest: str, handler: Handler, raw: list[OutboxItem], stats: DrainStats
    ) -> bool:
        """Deliver one batch; return True when it all went through."""
        batch = coalesce(raw, dest)
        try:
            handler(batch)
        except BatchFailure as exc:
            return self._finish(conn, dest, batch, set(exc.done_ids), exc.poison_id, exc.cause, stats)
        except Exception as exc:
            self._finish(conn, dest, batch, set(), None, exc, stats)
            return False
        return self._finish(conn, dest, batch, {i.id for i in batch}, None, None, stats)

    def _finish(
        self,
        conn: sqlite3.Connection,
        dest: str,
        batch: list[OutboxItem],
        done_ids: set[int],
        poison_id: int | None,
        error: BaseException | None,
        stats: DrainStats,
    ) -> bool:
        """Delete what was delivered, park a poison item, record the error and the next attempt time."""
        done = [i for i in batch if i.id in done_ids]
        now = self._clock()
        parked_only = poison_id is not None and error is not None and not self._retryable(error)
        try:
            with self._tx(conn):
                ids = [i.id for i in done] + [s for i in done for s in i.superseded]
                conn.executemany("DELETE FROM sync_outbox WHERE id = ?", [(i,) for i in ids])
                if done and self.on_done is not None:
                    self.on_done(conn, dest, done)
                if poison_id is not None and error is not None:
                    poisoned = next((i for i in batch if i.id == poison_id), None)
                    park = [poison_id, *(poisoned.superseded if poisoned else ())]
                    conn.executemany(
                        "UPDATE sync_outbox SET dead = 1, attempts = attempts + 1, last_error = ? WHERE id = ?",
                        [(_describe(error), i) for i in park],
                    )
                    stats.dead[dest] = stats.dead.get(dest, 0) + 1
                    log.error("outbox %s: item %d parked as undeliverable: %s", dest, poison_id, _describe(error))
                if error is None or parked_only:
                    conn.execute(
                        "INSERT INTO sync_outbox_state (destination, next_attempt_at, failures, "
                        "last_success_at) VALUES (?, 0, 0, ?) ON CONFLICT(destination) DO UPDATE SET "
                        "next_attempt_at = 0, failures = 0, last_success_at = excluded.last_success_at",
                        (dest, now),
                    )
                else:
                    rest = [i.id for i in batch if i.id not in done_ids and i.id != poison_id]
                    conn.executemany(
                        "UPDATE sync_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                        [(_describe(error), i) for i in rest],
                    )
                    row = conn.execute(
                        "SELECT failures FROM sync_outbox_state WHERE destination = ?", (dest,)
                    ).fetchone()
                    failures = (row[0] if row else 0) + 1
                    retry_after = getattr(error, "retry_after", None)
                    delay = self._backoff(failures, retry_after)
                    conn.execute(
                        "INSERT INTO sync_outbox_state (destination, next_attempt_at, failures, last_error, "
                        "last_error_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(destination) DO UPDATE SET "
                        "next_attempt_at = excluded.next_attempt_at, failures = excluded.failures, "
                        "last_error = excluded.last_error, last_error_at = excluded.last_error_at",
                        (dest, now + delay, failures, _describe(error), now),
                    )
                    stats.errors[dest] = _describe(error)
                    log.warning("outbox %s: delivery failed (%s), retry in %.1fs", dest, _describe(error), delay)
        except Exception as exc:  # on_done or SQLite failed: nothing was deleted, the batch goes again later
            log.exception("outbox %s: could not record the outcome of a batch", dest)
            stats.errors[dest] = _describe(exc)
            return False
        delivered = len(done) + sum(len(i.superseded) for i in done)
        if delivered:
            stats.sent[dest] = stats.sent.get(dest, 0) + delivered
            stats.confirmed.extend(done)
        return error is None or parked_only  # after parking a poison item the rest of the line can move on

    @staticmethod
    def _retryable(error: BaseException) -> bool:
        return isinstance(error, RemoteError) and error.retryable

    def pending(self, destination: str | None = None, key: str | None = None) -> int:
        """How many live (not dead) items wait: for one destination or all, optionally for one key."""
        sql, args = "SELECT count(*) FROM sync_outbox WHERE dead = 0", []
        if destination is not None:
            sql, args = sql + " AND destination = ?", [destination]
        if key is not None:
            sql, args = sql + " AND key = ?", [*args, key]
        with self._conn() as conn:
            return int(conn.execute(sql, args).fetchone()[0])

    def backlog(self) -> dict[str, dict[str, Any]]:
        """Per destination: pending, dead, oldest_age_s, last_error, attempts (failures in a row)."""
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        with self._conn() as conn:
            for dest, pending, dead, oldest in conn.execute(
                "SELECT destination, sum(dead = 0), sum(dead = 1), "
                "min(CASE WHEN dead = 0 THEN created_at END) FROM sync_outbox GROUP BY destination"
            ):
                out[dest] = {
                    "pending": int(pending or 0),
                    "dead": int(dead or 0),
                    "oldest_age_s": round(max(0.0, now - oldest), 3) if oldest is not None else 0.0,
                    "last_error": None,
                    "attempts": 0,
                    "next_attempt_in_s": 0.0,
                }
            for dest, next_at, failures, last_error in conn.execute(
                "SELECT destination, next_attempt_at, failures, last_error FROM sync_outbox_state"
            ):
                entry = out.setdefault(
                    dest,
                    {"pending": 0, "dead": 0, "oldest_age_s": 0.0, "last_error": None, "attempts": 0},
                )
                entry["attempts"] = int(failures)
                entry["last_error"] = last_error if failures or entry["dead"] else None
                entry["next_attempt_in_s"] = round(max(0.0, next_at - now), 3)
        return out

    def dead_items(self, destination: str | None = None) -> list[tuple[OutboxItem, str]]:
        """Parked items with their last error, oldest first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, destination, key, payload, created_at, attempts, last_error FROM sync_outbox "
                "WHERE dead = 1 AND (? IS NULL OR destination = ?) ORDER BY id",
                (destination, destination),
            ).fetchall()
        return [(OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]), r[6] or "") for r in rows]

    def requeue_dead(self, destination: str | None = None) -> int:
        """Put parked items back in line (after the operator fixed the cause); returns how many."""
        with self._conn() as conn, self._tx(conn):
            cur = conn.execute(
                "UPDATE sync_outbox SET dead = 0 WHERE dead = 1 AND (? IS NULL OR destination = ?)",
                (destination, destination),
            )
            return cur.rowcount


def _describe(error: BaseException) -> str:
    """One line for last_error; SyncError's str already carries its code."""
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:500]


class EnabledOutbox:
    """Writes outbox rows only for destinations that exist in this configuration."""

    def __init__(self, outbox: Outbox, enabled: set[str]) -> None:
        self.outbox = outbox
        self.enabled = enabled

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> None:
        if destination in self.enabled:
            self.outbox.add(conn, destination, key, payload)
