"""Prometheus metrics on a registry of the daemon's own: build timings and outcomes, queue, sync, webhooks, disk.

`Metrics` is the registry and what the daemon records into it (no collaborators: handlers and hooks count);
`StateGauges` recomputes, on each scrape, the gauges read from state, from the collaborators it is built with.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from daemon.core import diskspace
from daemon.core.db import ProjectVersion, utcnow
from daemon.core.events import BuildDone, ChecksRecorded, Events
from daemon.ops import usage
from daemon.publish import livealias
from sandbox.output import file_bytes

if TYPE_CHECKING:
    from daemon.core.config import Config
    from daemon.core.layout import Layout
    from daemon.fleet.seam import Fleet
    from daemon.intake.queue import BuildQueue
    from sync.outbox import Outbox

log = logging.getLogger("previewd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DISK_CACHE_S = 60.0
DURATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, float("inf"))
REFUSALS_KEPT = 1000


class Metrics:
    """Every metric of one daemon; several daemons in one process (tests) each have their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_seconds = Histogram("previewd_build_duration_seconds", "Whole build, queued to done.",
                                       registry=r, buckets=DURATION_BUCKETS)
        self.install_seconds = Histogram("previewd_install_duration_seconds", "pnpm install (when not skipped).",
                                         registry=r, buckets=DURATION_BUCKETS)
        self.deploy_seconds = Histogram("previewd_deploy_duration_seconds", "Deployment upload.",
                                        registry=r, buckets=DURATION_BUCKETS)
        self.builds = Counter("previewd_builds", "Builds finished, by status.", ["status"], registry=r)
        self.failures = Counter("previewd_build_failures", "Failed builds, by reason.", ["reason"], registry=r)
        self.check_failures = Counter("previewd_check_failures", "Versions whose type check or lint did not pass "
                                      "(fail or error), by kind.", ["kind"], registry=r)
        self.queue_depth = Gauge("previewd_queue_depth", "Builds waiting to start.", registry=r)
        self.running = Gauge("previewd_builds_running", "Versions building or deploying.", registry=r)
        self.sync_backlog = Gauge("previewd_sync_backlog", "Outbox items waiting, per destination.",
                                  ["destination"], registry=r)
        self.sync_dead = Gauge("previewd_sync_dead", "Outbox items parked as undeliverable, per destination.",
                               ["destination"], registry=r)
        self.sync_lag = Gauge("previewd_sync_lag_seconds", "Age of the oldest waiting outbox item, per destination.",
                              ["destination"], registry=r)
        self.webhooks = Counter("previewd_webhooks_received", "Deployment webhooks accepted, by kind.", ["kind"],
                                registry=r)
        self.webhook_retries = Counter("previewd_webhooks_retried", "Webhooks the sender delivered again, by kind.",
                                       ["kind"], registry=r)
        self.webhook_refusals = Counter("previewd_webhooks_refused", "Webhooks refused, by reason.", ["reason"],
                                        registry=r)
        self.auth_failures = Counter("previewd_auth_failures", "API requests refused by authentication (signature, "
                                     "token or metrics bearer), by reason code.", ["reason"], registry=r)
        self.sse_refused = Counter("previewd_sse_refused", "Log streams refused by a stream cap.", ["cap"], registry=r)
        self.sse_open = Gauge("previewd_sse_streams", "Log streams (SSE) open now.", registry=r)
        self.rate_limited_total = Counter("previewd_rate_limited_requests", "Requests refused by a rate cap.",
                                          ["cap"], registry=r)
        self.pages_month = Gauge("previewd_pages_deployments_month", "Pages deployments this calendar month (UTC).",
                                 registry=r)
        self.pages_quota = Gauge("previewd_pages_deployments_quota", "Pages deployments allowed per month.",
                                 registry=r)
        self.usage = Gauge("previewd_usage_month", "This calendar month's (UTC) metered usage, summed per plan "
                           "(meter: builds, build_cpu_seconds, artifact_bytes, pages_deployments).",
                           ["plan", "meter"], registry=r)
        self.quota_refusals = Counter("previewd_quota_refusals", "Builds refused by a plan's quota, by quota.",
                                      ["quota"], registry=r)
        self.disk = Gauge("previewd_disk_used_bytes", "Bytes used under the data dir, by area.", ["area"],
                          registry=r)
        # The data dir's filesystem, read on every scrape (one statvfs): what the disk_full answers are about.
        self.disk_free = Gauge("previewd_disk_free_bytes", "Free bytes on the data dir's filesystem.", registry=r)
        self.disk_reserve = Gauge("previewd_disk_reserve_bytes", "[limits] disk_reserve_mb in bytes: below it new "
                                  "builds answer 503 disk_full.", registry=r)
        self.disk_full_total = Counter("previewd_disk_full_refusals", "Requests answered 503 disk_full, by kind "
                                       "(reserve: a build refused below the reserve; write: a write that failed for "
                                       "space).", ["kind"], registry=r)
        # A fleet droplet's leases (daemon/fleet/leased.py); all zero with [fleet] off.
        self.fleet_leases = Gauge("previewd_fleet_leases_held", "Project leases this droplet holds now.", registry=r)
        self.fleet_takeovers = Gauge("previewd_fleet_takeovers", "Projects this droplet took from another droplet "
                                     "since start.", registry=r)
        self.fleet_lost = Gauge("previewd_fleet_leases_lost", "Leases this droplet found taken over since start.",
                                registry=r)
        self.fleet_refusals = Gauge("previewd_fleet_fencing_refusals", "Writes of this droplet refused for a stale "
                                    "lease epoch (replica rows and KV pointer moves) since start.", registry=r)
        self.fleet_catchup = Gauge("previewd_fleet_catch_up_seconds", "How long the last catch-up after taking a "
                                   "project's lease took.", registry=r)
        self.refusal_times: deque[float] = deque(maxlen=REFUSALS_KEPT)  # read by the webhook-auth alert
        # (time, client IP) of each failed API authentication, read by the API-auth alert; in memory only.
        self.auth_failure_times: deque[tuple[float, str]] = deque(maxlen=REFUSALS_KEPT)
        self.disk_full_times: deque[float] = deque(maxlen=REFUSALS_KEPT)  # read by the disk_full alert

    def observe_build(self, v: ProjectVersion) -> None:
        """A build ended (deployed, failed, or deploying while the platform confirms)."""
        self.builds.labels(status=v.status).inc()
        if v.status == "failed":
            self.failures.labels(reason=v.failure_reason or "unknown").inc()
        for hist, ms in ((self.build_seconds, v.build_duration_ms), (self.install_seconds, v.install_duration_ms),
                         (self.deploy_seconds, v.deploy_duration_ms)):
            if ms:
                hist.observe(ms / 1000)

    def build_done(self, event: BuildDone) -> None:
        """The event bus's BuildDone: observe its version."""
        self.observe_build(event.version)

    def checks_recorded(self, event: ChecksRecorded) -> None:
        """The event bus's ChecksRecorded: count its version's failed checks."""
        self.observe_checks(event.version)

    def observe_checks(self, v: ProjectVersion) -> None:
        """A version's checks were recorded: count each kind that did not pass."""
        record = json.loads(v.checks) if isinstance(v.checks, str) and v.checks else {}
        for kind in ("typecheck", "lint"):
            if isinstance(record, dict) and (record.get(kind) or {}).get("status") in ("fail", "error"):
                self.check_failures.labels(kind=kind).inc()

    def install(self, events: Events) -> None:
        """Hook build outcomes and recorded checks into the metrics (the same handlers subscribe once)."""
        events.subscribe(BuildDone, self.build_done)
        events.subscribe(ChecksRecorded, self.checks_recorded)

    def webhook_received(self, kind: str) -> None:
        """A deployment webhook was accepted (kind: the event, e.g. deployment.success)."""
        self.webhooks.labels(kind=kind).inc()

    def webhook_retried(self, kind: str) -> None:
        """The sender delivered a webhook we had already seen."""
        self.webhook_retries.labels(kind=kind).inc()

    def webhook_refused(self, reason: str) -> None:
        """A webhook was refused (reason: auth, bad_body, ...); auth refusals feed the webhook-auth alert."""
        self.webhook_refusals.labels(reason=reason).inc()
        if reason == "auth":
            self.refusal_times.append(time.time())

    def rate_limited(self, cap: str) -> None:
        """A request was refused by a rate cap (cap: ip, new_project, rebuild)."""
        self.rate_limited_total.labels(cap=cap).inc()

    def quota_refused(self, quota: str) -> None:
        """A build was refused by a plan's quota (quota: builds, build_cpu_seconds, ...)."""
        self.quota_refusals.labels(quota=quota).inc()

    def auth_failed(self, reason: str, ip: str) -> None:
        """An API request failed authentication (reason: the error code); feeds the API-auth alert."""
        self.auth_failures.labels(reason=reason).inc()
        self.auth_failure_times.append((time.time(), ip))

    def disk_full_refused(self, kind: str) -> None:
        """A request was answered 503 disk_full (kind: reserve, write); feeds the disk_full alert."""
        self.disk_full_total.labels(kind=kind).inc()
        self.disk_full_times.append(time.time())

    def gauges(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """The current samples of every gauge and counter, by metric name (what `render` exposes), for pages
        that show the same figures as /metrics."""
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith(("_created", "_bucket")):
                    continue
                out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return out

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def pages_deployments_this_month(now: datetime | None = None) -> int:
    """Pages deployments since the first of this month (UTC): versions that created one, plus live alias
    redeploys (undo/redo on Cloudflare)."""
    now = now or utcnow()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(ProjectVersion.select().where(ProjectVersion.cf_deployment_id.is_null(False)
                                             & (ProjectVersion.created_at >= start)).count()) \
        + livealias.redeploys_this_month(start.strftime("%Y-%m"))


class StateGauges:
    """The gauges read from state on each scrape (/metrics, the dashboard's overview), from what they read."""

    def __init__(self, metrics: Metrics, cfg: Config, layout: Layout, outbox: Outbox, fleet: Fleet,
                 queue: BuildQueue | None = None) -> None:
        """`outbox`: sync's outbox (its backlog per destination); `fleet`: its figures (all zero alone)."""
        self.metrics = metrics
        self.cfg = cfg
        self.layout = layout
        self.outbox = outbox
        self.fleet = fleet
        self.queue = queue
        self._disk_at = 0.0
        self._disk_lock = threading.Lock()

    @property
    def data_dir(self) -> Path:
        return self.layout.data_dir

    def refresh(self, *, now: datetime | None = None) -> None:
        """Recompute the gauges read from state (queue, sync, quota; disk at most every DISK_CACHE_S)."""
        m = self.metrics
        if self.queue is not None:
            try:
                m.queue_depth.set(self.queue.pending())
            except Exception:
                log.warning("queue depth unavailable", exc_info=True)
        m.running.set(ProjectVersion.select().where(ProjectVersion.status.in_(("building", "deploying"))).count())
        for dest, b in self.outbox.backlog().items():
            m.sync_backlog.labels(destination=dest).set(b.get("pending", 0))
            m.sync_dead.labels(destination=dest).set(b.get("dead", 0))
            m.sync_lag.labels(destination=dest).set(b.get("oldest_age_s", 0.0))
        fleet = self.fleet.figures()
        m.fleet_leases.set(fleet.leases_held)
        m.fleet_takeovers.set(fleet.takeovers)
        m.fleet_lost.set(fleet.leases_lost)
        m.fleet_refusals.set(fleet.fencing_refusals)
        m.fleet_catchup.set(fleet.last_catch_up_s)
        m.pages_month.set(pages_deployments_this_month(now))
        m.pages_quota.set(self.cfg.retention.pages_quota_month)
        for plan, figures in usage.by_plan().items():
            for meter, value in figures.items():
                m.usage.labels(plan=plan, meter=meter).set(value)
        m.disk_free.set(max(0, diskspace.free_bytes(self.data_dir)))
        m.disk_reserve.set(self.cfg.limits.disk_reserve_mb * 2**20)
        self._refresh_disk()

    def _refresh_disk(self) -> None:
        # Walking the trees is slow on a full droplet: at most once a minute, and one walker at a time.
        if time.monotonic() - self._disk_at < DISK_CACHE_S or not self._disk_lock.acquire(blocking=False):
            return
        try:
            d = self.data_dir
            for area, path in (("projects", d / "projects"), ("objects", d / "objects"), ("previews", d / "previews"),
                               ("logs", d / "logs"), ("pnpm_store", self.layout.store_dir)):
                self.metrics.disk.labels(area=area).set(file_bytes(path))
            self._disk_at = time.monotonic()
        finally:
            self._disk_lock.release()
