"""Rate caps persisted in SQLite: sliding one-hour windows per IP, per user (new projects), per project (rebuilds)."""

from __future__ import annotations

import math
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
