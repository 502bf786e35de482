"""The operations jobs of one daemon, built once by the composition root (daemon/wiring.py `build_ops_jobs`)
from the runtime's edges; the services (daemon/services/) hand them to handlers and pages, the scheduler runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.ops.alerts import Alerts
    from daemon.ops.cleanup import Cleanup
    from daemon.ops.metrics import Metrics, StateGauges
    from daemon.ops.retention import RetentionSweep
    from daemon.ops.scheduler import Scheduler
    from daemon.ops.status import Status


@dataclass(eq=False)  # compared by identity: one per daemon
class OpsJobs:
    """Each operations object, holding only the collaborators it uses."""

    metrics: Metrics  # the registry handlers and build hooks count into
    gauges: StateGauges  # the gauges a scrape reads from state
    alerts: Alerts
    cleanup: Cleanup
    sweep: RetentionSweep
    status: Status
    scheduler: Scheduler
