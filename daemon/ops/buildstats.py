"""Build analytics over a time window, from the version rows: builds per hour, failures by reason, percentiles.

The Prometheus counters in `metrics` count since the daemon started; a window of 24 h or 7 d needs the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from daemon.core.db import database, utcnow

WINDOWS = {"24h": 24, "7d": 24 * 7}


def percentile(values: list[int], q: float, *, ordered: bool = False) -> int | None:
    """The nearest-rank q-th percentile (0..1) of values (`ordered`: already sorted); None when empty."""
    if not values:
        return None
    ranked = values if ordered else sorted(values)
    return ranked[max(0, math.ceil(q * len(ranked)) - 1)]


@dataclass
class WindowStats:
    """What finished in a window: per-hour counts, failure reasons, and duration percentiles (ms)."""

    hours: int
    since: datetime
    buckets: list[tuple[datetime, int, int]] = field(default_factory=list)  # (hour start, finished, failed)
    by_reason: list[tuple[str, int]] = field(default_factory=list)
    finished: int = 0
    failed: int = 0
    durations: dict[str, dict[str, int | None]] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float:
        return self.failed / self.finished if self.finished else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO strings)."""
        return {"hours": self.hours, "finished": self.finished, "failed": self.failed,
                "failureRate": self.failure_rate, "byReason": dict(self.by_reason), "durations": self.durations,
                "buckets": [[t.isoformat() + "Z", n, f] for t, n, f in self.buckets]}


def window_stats(hours: int, now: datetime | None = None) -> WindowStats:
    """Finished builds created in the last `hours`: counted per bucket and reason by SQLite, over the covering
    index on created_at; only the duration columns come back to Python, for the percentiles."""
    now = now or utcnow()
    since = now - timedelta(hours=hours)
    step = 1 if hours <= 48 else 6  # a 7-day chart in 6-hour bars stays readable at 390 px
    start = since.replace(minute=0, second=0, microsecond=0)
    start -= timedelta(hours=start.hour % step)
    n_buckets = math.ceil((now - start) / timedelta(hours=step))
    finished = [0] * n_buckets
    failed = [0] * n_buckets
    window = "created_at >= ? AND status IN ('deployed', 'failed')"
    cur = database.execute_sql(
        "SELECT CAST((julianday(created_at) - julianday(?)) * 24 / ? AS INTEGER) AS b, COUNT(*), "
        f"SUM(status = 'failed') FROM project_versions WHERE {window} GROUP BY b", (str(start), step, str(since)))
    for b, n, f in cur:
        i = min(n_buckets - 1, max(0, int(b)))
        finished[i] += int(n)
        failed[i] += int(f or 0)
    reasons = database.execute_sql(
        "SELECT COALESCE(failure_reason, 'unknown'), COUNT(*) FROM project_versions "
        "WHERE created_at >= ? AND status = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1", (str(since),)).fetchall()
    # A rollback that redeploys an artifact takes a few ms and builds nothing: counted as a build above, left out of
    # the timings, where it would pull the median down.
    rows = database.execute_sql(
        f"SELECT build_duration_ms, install_duration_ms, deploy_duration_ms FROM project_versions WHERE {window} "
        "AND coalesce(kind, 'new') != 'rollback'", (str(since),)).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    spans = {name: sorted(x for x in col if x) for name, col in zip(("build", "install", "deploy"), columns,
                                                                    strict=True)}
    stats = WindowStats(hours=hours, since=since)
    stats.buckets = [(start + timedelta(hours=step * i), finished[i], failed[i]) for i in range(n_buckets)]
    stats.by_reason = [(str(r), int(n)) for r, n in reasons]
    stats.finished, stats.failed = sum(finished), sum(failed)
    stats.durations = {name: {"p50": percentile(v, 0.5, ordered=True), "p95": percentile(v, 0.95, ordered=True),
                              "count": len(v)}
                       for name, v in spans.items()}
    return stats
