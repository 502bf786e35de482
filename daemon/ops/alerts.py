"""The seed's alerts: evaluated each minute, kept in memory, logged once on start and on clear, optionally POSTed.

One `Alerts` per daemon, built by the composition root with what its checks read (the config, the data dir, the
daemon's `Metrics`); it holds the firing state and the webhook posts' bounded pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from daemon.core import diskspace, quotas
from daemon.core.db import ProjectVersion, database, utcnow
from daemon.ops.metrics import Metrics, pages_deployments_this_month

if TYPE_CHECKING:
    from daemon.core.config import Config

log = logging.getLogger("previewd.alerts")

MIN_BUILDS = 5  # a failure rate over fewer builds is noise
MEMORY_MAX_PERCENT = 90.0
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_THREADS = 2


@dataclass(frozen=True)
class Alert:
    """One firing condition: a stable name, what is wrong in a sentence, the measured value and its threshold."""

    name: str
    message: str
    value: float
    threshold: float
    since: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _failure_rate(a: Alerts, now: datetime) -> Alert | None:
    c = a.cfg.alerts
    since = now - timedelta(minutes=c.window_minutes)
    statuses = [str(v.status) for v in ProjectVersion.select(ProjectVersion.status)
                .where(ProjectVersion.status.in_(("deployed", "failed")) & (ProjectVersion.updated_at >= since))]
    total = len(statuses)
    failed = statuses.count("failed")
    if total < MIN_BUILDS or failed / total < c.failure_rate:
        return None
    return Alert("build_failure_rate", f"{failed} of {total} builds failed in the last {c.window_minutes} min",
                 round(failed / total, 3), c.failure_rate)


def _pages_quota(a: Alerts, now: datetime) -> Alert | None:
    quota = a.cfg.retention.pages_quota_month
    used = pages_deployments_this_month(now)
    if used < a.cfg.alerts.quota_ratio * quota:
        return None
    return Alert("pages_quota", f"{used} of {quota} Pages deployments used this month", used,
                 a.cfg.alerts.quota_ratio * quota)


def _webhook_auth(a: Alerts, now: datetime) -> Alert | None:
    window = a.cfg.alerts.window_minutes * 60
    cutoff = time.time() - window
    recent = sum(1 for t in list(a.metrics.refusal_times) if t >= cutoff)
    if not recent:
        return None
    return Alert("webhook_auth_failures", f"{recent} webhook(s) failed authentication in the last "
                 f"{a.cfg.alerts.window_minutes} min (check the webhook secret)", recent, 1)


def _api_auth(a: Alerts, now: datetime) -> Alert | None:
    cutoff = time.time() - a.cfg.alerts.window_minutes * 60
    recent = [ip for t, ip in list(a.metrics.auth_failure_times) if t >= cutoff]
    if len(recent) < a.cfg.alerts.auth_failures:
        return None
    top, n = Counter(recent).most_common(1)[0]
    return Alert("api_auth_failures", f"{len(recent)} API request(s) failed authentication in the last "
                 f"{a.cfg.alerts.window_minutes} min, {n} of them from {top} (a probe, or a client with the "
                 "wrong secret or clock)", len(recent), a.cfg.alerts.auth_failures)


def _disk(a: Alerts, now: datetime) -> Alert | None:
    usage = psutil.disk_usage(str(a.data_dir))
    free = 100.0 - usage.percent
    if free >= a.cfg.alerts.disk_free_min_percent:
        return None
    return Alert("disk_pressure", f"{free:.1f}% free on the data dir's disk ({usage.free // 2**20} MiB)",
                 round(free, 1), a.cfg.alerts.disk_free_min_percent)


def _disk_full(a: Alerts, now: datetime) -> Alert | None:
    """Below the build reserve now, or writes answered 503 disk_full within the window."""
    free = diskspace.free_bytes(a.data_dir)
    reserve = a.cfg.limits.disk_reserve_mb * 2**20
    cutoff = time.time() - a.cfg.alerts.window_minutes * 60
    recent = sum(1 for t in list(a.metrics.disk_full_times) if t >= cutoff)
    fs = diskspace.mount_point(a.data_dir)
    if 0 <= free < reserve:
        return Alert("disk_full", f"the filesystem {fs} (the data dir's) has {free // 2**20} MiB free, below the "
                     f"reserve of {reserve // 2**20} MiB: new builds are refused (503 disk_full)"
                     + (f"; {recent} request(s) answered disk_full in the last {a.cfg.alerts.window_minutes} min"
                        if recent else ""), free, reserve)
    if recent:
        return Alert("disk_full", f"{recent} request(s) answered 503 disk_full in the last "
                     f"{a.cfg.alerts.window_minutes} min (the filesystem {fs} filled up; "
                     f"{free // 2**20} MiB free now)", free, reserve)
    return None


def _memory(a: Alerts, now: datetime) -> Alert | None:
    mem = psutil.virtual_memory()
    if mem.percent < MEMORY_MAX_PERCENT:
        return None
    return Alert("memory_pressure", f"{mem.percent:.0f}% of memory in use ({mem.available // 2**20} MiB available)",
                 mem.percent, MEMORY_MAX_PERCENT)


CHECKS = [_failure_rate, _pages_quota, _webhook_auth, _api_auth, _disk, _disk_full, _memory]
DISK_CHECKS = [_disk, _disk_full]


class Alerts:
    """The alerts firing now in one daemon; transitions are logged and posted once."""

    def __init__(self, cfg: Config, data_dir: Path, metrics: Metrics) -> None:
        """`metrics`: the daemon's registry, whose refusal times the auth and disk_full checks read."""
        self.cfg = cfg
        self.data_dir = data_dir
        self.metrics = metrics
        self.active: dict[str, Alert] = {}
        self.lock = threading.Lock()
        self.last_evaluated: str | None = None
        # Webhook posts: a bounded pool, so a burst of alerts (one per user over quota) never makes a thread each.
        self._posts: ThreadPoolExecutor | None = None

    # -- the webhook posts (a background job: "alert-webhooks") ------------------------------------------
    def _submit(self, send: Callable[[], None]) -> None:
        """Run a webhook post on the alerts' pool (never on the caller's thread)."""
        with self.lock:
            if self._posts is None:
                self._posts = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="alert-webhook")
            pool = self._posts
        pool.submit(send)

    def stop(self) -> None:
        """Drop the posts not yet sent, wait for those being sent (each times out after WEBHOOK_TIMEOUT_S)."""
        with self.lock:
            pool, self._posts = self._posts, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def alive(self) -> bool:
        """A webhook post is being sent."""
        pool = self._posts
        return pool is not None and any(t.is_alive() for t in getattr(pool, "_threads", ()))

    def post(self, body: dict[str, Any]) -> None:
        """Send to the alert webhook on the pool: never blocks a request or the scheduler."""
        url = self.cfg.alerts.webhook_url
        if not url:
            return

        def send() -> None:
            try:
                r = httpx.post(url, json=body, timeout=WEBHOOK_TIMEOUT_S, trust_env=False)
                if r.status_code >= 400:
                    log.warning("alert webhook answered %d for %s", r.status_code, body["alert"])
            except httpx.HTTPError as exc:  # the URL may carry a token: name the error type, never the URL
                log.warning("alert webhook unreachable for %s: %s", body["alert"], type(exc).__name__)

        self._submit(send)

    # -- evaluation --------------------------------------------------------------------------------------
    def update(self, found: list[Alert], now: datetime, only: set[str] | None = None) -> list[Alert]:
        """Record what fires now; with `only`, just those alerts were evaluated and the others stand."""
        stamp = now.replace(tzinfo=UTC).isoformat()
        with self.lock:
            current = {a.name: a for a in found}
            if only is not None:
                current = {**{n: a for n, a in self.active.items() if n not in only}, **current}
            started = [a for name, a in current.items() if name not in self.active]
            cleared = [a for name, a in self.active.items() if name not in current]
            self.active = {name: Alert(a.name, a.message, a.value, a.threshold,
                                       self.active[name].since if name in self.active else stamp)
                           for name, a in current.items()}
            self.last_evaluated = stamp
            firing = sorted(self.active.values(), key=lambda a: a.name)
        for a in started:
            log.warning("ALERT %s: %s", a.name, a.message)
            self.post({"alert": a.name, "state": "firing", "message": a.message, "value": a.value,
                       "threshold": a.threshold, "at": stamp})
        for a in cleared:
            log.info("alert cleared: %s", a.name)
            self.post({"alert": a.name, "state": "resolved", "message": a.message, "at": stamp})
        return firing

    def quota_alerts(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Post one alert per user, quota and month when usage reaches [quotas] alert_ratio of the plan's limit
        (remembered in state.db, so a restart does not post it again); returns the bodies posted."""
        cfg = self.cfg
        if not quotas.enabled(cfg):
            return []
        now = now or quotas.clock()
        month = quotas.month_of(now)
        ratio = cfg.quotas.alert_ratio
        users = dict(database.execute_sql(
            "SELECT user_id, (SELECT org_id FROM build_usage b2 WHERE b2.user_id = b.user_id AND b2.month = ? "
            "ORDER BY created_at DESC LIMIT 1) FROM build_usage b WHERE month = ? GROUP BY user_id "
            "UNION SELECT user_id, NULL FROM storage_gauges WHERE bytes > 0 AND user_id NOT IN "
            "(SELECT user_id FROM build_usage WHERE month = ?)", (month, month, month)).fetchall())
        posted: list[dict[str, Any]] = []
        for user_id, org_id in sorted(users.items()):
            name, plan = quotas.plan_for(cfg, user_id, org_id)
            limits = {q: v for q, v in quotas.limits_of(plan).items() if q != "concurrent_projects"}
            if not limits:
                continue
            u = quotas.usage_of(user_id, month)
            for quota, limit in limits.items():
                used = u.figure(quota)
                if used < ratio * limit:
                    continue
                key = f"{month}:{user_id}:{quota}"
                if not database.execute_sql("INSERT OR IGNORE INTO quota_alerts_sent (key, at) VALUES (?, ?)",
                                            (key, str(utcnow()))).rowcount:
                    continue  # posted already this month
                fig, lim = quotas.shown(quota, used), quotas.shown(quota, limit)
                body = {"alert": "quota_usage", "state": "firing", "userId": user_id, "plan": name, "quota": quota,
                        "used": fig, "limit": lim, "month": month, "ratio": round(used / limit, 4),
                        "message": f"user {user_id} used {fig} of {lim} {quota} on plan {name} in {month}",
                        "at": now.replace(tzinfo=UTC).isoformat()}
                log.warning("ALERT quota_usage: %s", body["message"])
                self.post(body)
                posted.append(body)
        return posted

    def evaluate(self, now: datetime | None = None) -> list[Alert]:
        """Run every check, record transitions, return what fires now. A check that errors is logged and
        skipped."""
        try:
            self.quota_alerts()
        except Exception:
            log.exception("quota alert check failed")
        now = now or utcnow()
        found: list[Alert] = []
        for check in CHECKS:
            try:
                a = check(self, now)
            except Exception:
                log.exception("alert check %s failed", check.__name__)
                continue
            if a is not None:
                found.append(a)
        return self.update(found, now)

    def evaluate_disk(self, now: datetime | None = None) -> list[Alert]:
        """Re-run the disk checks only (one statvfs each; health detail calls it so a full disk shows at once) and
        return every alert firing now."""
        now = now or utcnow()
        names = {"disk_pressure", "disk_full"}
        found = [a for check in DISK_CHECKS if (a := check(self, now)) is not None]
        if self.last_evaluated is None:  # keep "never evaluated" meaning what health detail reads it as
            return self.evaluate(now)
        return self.update(found, now, only=names)

    def firing(self) -> list[Alert]:
        """What fired at the last evaluation (no new evaluation)."""
        with self.lock:
            return sorted(self.active.values(), key=lambda a: a.name)

    def run(self) -> None:
        """The scheduled run (every minute, and once right at start): `evaluate`, a failure logged."""
        try:
            self.evaluate()
        except Exception:
            log.exception("alert evaluation failed")
