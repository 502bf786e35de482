"""Every scheduled job in one place (APScheduler 3): rate-cap housekeeping, deployment polling, live alias retries,
cleanup, alerts, the retention sweep. The jobs are built by the composition root (daemon/wiring.py) and handed in;
this module says when each one runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from daemon.core import ratelimit

if TYPE_CHECKING:
    from daemon.ops.alerts import Alerts
    from daemon.ops.cleanup import Cleanup
    from daemon.ops.retention import RetentionSweep

log = logging.getLogger("previewd.scheduler")
RETRY_ALIASES_S = 5.0


def _guarded(name: str, fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # a job never takes the scheduler down; the next run tries again
            log.exception("scheduled job %s failed", name)

    run.__name__ = run.__qualname__ = name
    return run


class Scheduler:
    """Owns the APScheduler instance and registers the daemon's jobs."""

    def __init__(self, *, poll_deployments: Callable[[], object], poll_interval_s: float, cleanup: Cleanup,
                 alerts: Alerts, sweep: RetentionSweep, retry_aliases: Callable[[], object] | None = None) -> None:
        """`poll_deployments`: the deployment-status fallback (one run); `poll_interval_s`: [deploy]
        poll_interval_s; `retry_aliases`: one pass over the live alias redeploys due for another try; the rest are
        the daemon's jobs, each run by its own method."""
        # APScheduler logs every run of every job at INFO: seconds-apart polling would drown the log.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._thread: threading.Thread | None = None
        self.aps = aps = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        aps.add_job(_guarded("prune_rate_events", ratelimit.prune), "interval", minutes=10, id="prune_rate_events")
        # The deployment-status fallback: cheap when nothing is pending (one indexed SELECT).
        aps.add_job(_guarded("poll_deployments", poll_deployments), "interval", seconds=min(5.0, poll_interval_s),
                    id="poll_deployments")
        if retry_aliases is not None:  # cheap when nothing is due (one indexed SELECT)
            aps.add_job(_guarded("retry_aliases", retry_aliases), "interval", seconds=RETRY_ALIASES_S,
                        id="retry_aliases")
        hh, mm = cleanup.cfg.retention.nightly_at.split(":")
        aps.add_job(cleanup.nightly, "cron", hour=int(hh), minute=int(mm), id="nightly_cleanup",
                    replace_existing=True)
        aps.add_job(alerts.run, "interval", minutes=1, id="alerts", replace_existing=True,
                    next_run_time=datetime.now(UTC))  # and once right at start
        if sweep.scheduled:  # a fleet droplet drops the previews the retention deleted elsewhere
            aps.add_job(sweep.run, "interval", seconds=sweep.interval_s, id="retention_sweep", replace_existing=True)

    def job_names(self) -> list[str]:
        """Each scheduled job with its trigger, for the background-job listing."""
        return [f"{job.id} ({job.trigger})" for job in self.aps.get_jobs()]

    def alive(self) -> bool:
        """APScheduler's thread still runs."""
        return bool(self._thread is not None and self._thread.is_alive())

    def start(self) -> None:
        self.aps.start()
        self._thread = getattr(self.aps, "_thread", None)

    def stop(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
