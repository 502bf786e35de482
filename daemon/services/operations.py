"""Operations: the operator's view and levers (status, health, metrics, sync, cleanup, fleet, restore)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import diskspace
from daemon.fleet import verify
from daemon.intake import restore as restoring
from daemon.ops import replication as syncops
from daemon.project import isolation

if TYPE_CHECKING:
    from daemon.ops.jobs import OpsJobs
    from daemon.runtime import Runtime

Gauges = dict[str, list[tuple[dict[str, str], float]]]


class Operations:
    """What `/status`, `/healthz`, `/metrics`, `/ops/*` and the dashboard's overview read and do. Methods block
    (database, network, disk): call them off the event loop, but `draining`."""

    def __init__(self, rt: Runtime, ops: OpsJobs) -> None:
        """`ops`: the daemon's operations jobs (status, alerts, metrics, cleanup); `rt` for the fleet's levers."""
        self._rt = rt
        self._ops = ops

    @property
    def draining(self) -> bool:
        """A fleet droplet told to drain: its liveness answers 503 so a proxy takes it out of the API pool."""
        return self._rt.fleet.draining

    @property
    def warming(self) -> bool:
        """A droplet filling its package store from the fleet's cache: liveness answers 503 `warming` until it is
        warm (or `[fleet] warm_timeout_s` passed), so a proxy routes no build to it yet."""
        return self._rt.fleet.warming

    def warm_status(self) -> dict[str, Any] | None:
        """The warm start's state and counts; None without a shared store cache."""
        return self._rt.warm_start.status() if self._rt.warm_start is not None else None

    def status(self) -> dict[str, Any]:
        """Queue, versions by status, sandbox layer, sync backlog, disk (`daemonctl status`)."""
        return self._ops.status.report()

    def health_detail(self) -> dict[str, Any]:
        """Liveness plus the alerts firing at the last evaluation (evaluated now when never evaluated yet)."""
        runtime, alerts = self._rt, self._ops.alerts
        # The disk checks run on every read (a statvfs): a disk that filled since the last minute's evaluation shows
        # now.
        firing = alerts.evaluate_disk() if alerts.last_evaluated else alerts.evaluate()
        out: dict[str, Any] = {"ok": not firing, "alerts": [a.to_json() for a in firing],
                               "evaluatedAt": alerts.last_evaluated,
                               "disk": diskspace.report(runtime.data_dir, runtime.cfg.limits.disk_reserve_mb * 2**20)}
        # Said on every detailed health read: unconfined builds, or builds refused for want of the isolation layer.
        conf = isolation.confinement(runtime.cfg)
        out["isolation"] = conf.as_dict()
        if not conf.confined:
            out["warnings"] = [isolation.UNCONFINED_WARNING if conf.allowed else
                               f"builds are refused (sandbox_unavailable): {conf.why}; fix: {conf.fix}"]
        if (warm := self.warm_status()) is not None:
            out["warmStart"] = warm
        return out

    def metrics_text(self) -> bytes:
        """The Prometheus exposition, its gauges read from state now."""
        self._ops.gauges.refresh()
        return self._ops.metrics.render()

    def gauges(self) -> Gauges:
        """Every gauge and counter of `/metrics`, read from state now, by metric name (for the overview page)."""
        self._ops.gauges.refresh()
        return self._ops.metrics.gauges()

    def sync_flush(self) -> dict[str, Any]:
        """Drain the sync outbox now, ignoring back-off."""
        return syncops.flush(self._rt.sync_loop)

    def sync_verify(self) -> dict[str, Any]:
        """Every difference between the local rows, the Postgres rows and the KV pointers."""
        return syncops.verify(self._rt.replica, self._rt.kv)

    def verify_project(self, user_id: str, project_id: str) -> dict[str, object]:
        """One project across Postgres, the bucket and KV, whichever droplet asks."""
        r = self._rt
        return verify.verify_project(r.fleet, r.replica, r.remote_objects, r.kv, r.layout, user_id, project_id)

    def cleanup(self, *, dry_run: bool) -> dict[str, Any]:
        """The nightly retention cleanup on demand (409 when one runs); `dry_run` changes nothing."""
        return self._ops.cleanup.run(dry_run=dry_run).to_json()

    def fleet_status(self) -> dict[str, object]:
        """This droplet's leases and counters, the droplets seen and every lease ([fleet] off: enabled false)."""
        return self._rt.fleet.status()

    def drain(self) -> dict[str, object]:
        """Stop taking builds (503 `draining`); leases are released as their projects go idle (409 off a fleet)."""
        return self._rt.fleet.drain()

    def restore(self, user_id: str, project_id: str) -> dict[str, Any]:
        """Rebuild a project's history from the packs in object storage (and its rows from the replica)."""
        return restoring.restore(self._rt, user_id, project_id)
