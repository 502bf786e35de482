"""Every scheduled job in one place (APScheduler 3): rate-cap housekeeping, deployment polling, cleanup."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from daemon.core import ratelimit
from daemon.ops import alerts, cleanup, retention
from daemon.publish import deploywatch

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.scheduler")


def _guarded(name: str, fn: object) -> object:
    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except Exception:  # a job never takes the scheduler down; the next run tries again
            log.exception("scheduled job %s failed", name)

    run.__name__ = run.__qualname__ = name
    return run


class Scheduler:
    """Owns the APScheduler instance and registers the daemon's jobs."""

    def __init__(self, rt: Runtime) -> None:
        # APScheduler logs every run of every job at INFO: seconds-apart polling would drown the log.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._thread: threading.Thread | None = None
        self.aps = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        self.aps.add_job(_guarded("prune_rate_events", ratelimit.prune), "interval", minutes=10,
                         id="prune_rate_events")
        # The deployment-status fallback: cheap when nothing is pending (one indexed SELECT).
        self.aps.add_job(_guarded("poll_deployments", lambda: deploywatch.poll_due(rt)), "interval",
                         seconds=min(5.0, rt.cfg.deploy.poll_interval_s), id="poll_deployments")
        cleanup.register(self.aps, rt)
        alerts.register(self.aps, rt)
        retention.register(self.aps, rt)  # a fleet droplet drops the previews the retention deleted elsewhere

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
