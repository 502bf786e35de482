"""Every scheduled job in one place (APScheduler 3): housekeeping now; deploy polling and cleanup plug in here."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from daemon import ratelimit

if TYPE_CHECKING:
    from daemon.server import Daemon

log = logging.getLogger("previewd.scheduler")


def _guarded(name: str, fn: object) -> object:
    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except Exception:  # a job never takes the scheduler down; the next run tries again
            log.exception("scheduled job %s failed", name)

    run.__name__ = name
    return run


class Scheduler:
    """Owns the APScheduler instance and registers the daemon's jobs."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.aps = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        self.aps.add_job(_guarded("prune_rate_events", ratelimit.prune), "interval", minutes=10,
                         id="prune_rate_events")

    def start(self) -> None:
        self.aps.start()

    def stop(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
