"""Rate caps: one-hour windows persisted in SQLite (per IP, user, project), and an in-memory one for failed auth."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from datetime import timedelta

from daemon.core.db import RateEvent, database, utcnow
from daemon.core.errors import RateLimited

WINDOW = timedelta(hours=1)


def hit(bucket: str, cap: int, what: str) -> None:
    """Count one event in `bucket`, or raise RateLimited (429 + Retry-After) when the window is full."""
    now = utcnow()
    since = now - WINDOW
    with database.atomic("IMMEDIATE"):
        q = RateEvent.select(RateEvent.at).where((RateEvent.bucket == bucket) & (RateEvent.at > since))
        count = q.count()
        if count >= cap:
            oldest = q.order_by(RateEvent.at).first()
            wait = (oldest.at + WINDOW - now).total_seconds() if oldest else WINDOW.total_seconds()
            raise RateLimited(f"rate cap reached: {what} ({cap} per hour)", retry_after=max(1, math.ceil(wait)),
                              limit=cap)
        RateEvent.create(bucket=bucket, at=now)


def prune() -> int:
    """Forget events older than the window; returns how many went."""
    return RateEvent.delete().where(RateEvent.at <= utcnow() - WINDOW).execute()


class MemoryWindow:
    """A one-hour sliding count per key, in memory only: for events that must never cost a database write
    (failed authentication). Bounded in keys, so a flood of distinct addresses cannot grow it without limit."""

    def __init__(self, max_keys: int = 10_000, window_s: float = WINDOW.total_seconds()) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()  # least recently counted first
        self._lock = threading.Lock()

    def add(self, key: str, cap: int, now: float | None = None) -> int:
        """Count one event; returns the count in the window (at most cap + 1: older ones beyond are dropped)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            q = self._events.get(key)
            if q is None:
                if len(self._events) >= self.max_keys:  # forget the key idle longest
                    self._events.popitem(last=False)
                q = self._events[key] = deque(maxlen=cap + 1)
            else:
                self._events.move_to_end(key)
            while q and q[0] <= t - self.window_s:
                q.popleft()
            q.append(t)
            return len(q)

    def count(self, key: str, now: float | None = None) -> int:
        """Events of key in the window now, without counting one."""
        t = time.monotonic() if now is None else now
        with self._lock:
            q = self._events.get(key)
            return sum(1 for at in q if at > t - self.window_s) if q else 0

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until the oldest counted event of key leaves the window."""
        t = time.monotonic() if now is None else now
        with self._lock:
            q = self._events.get(key)
            return max(1, math.ceil(q[0] + self.window_s - t)) if q else 1
