"""What `daemonctl status` shows of a running daemon: versions by status, queue, sandbox, sync backlog, disk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psutil
from peewee import fn

from daemon.core.db import ProjectVersion as PV
from daemon.project import toolchain
from sandbox.probe import syscall_filter_availability

if TYPE_CHECKING:
    from daemon.intake.queue import BuildQueue
    from daemon.runtime import Runtime


def status_report(rt: Runtime, queue: BuildQueue) -> dict[str, Any]:
    """What `daemonctl status` shows."""
    counts: dict[str, int] = dict(PV.select(PV.status, fn.COUNT(PV.version_id)).group_by(PV.status).tuples())  # type: ignore[arg-type]
    disk = psutil.disk_usage(str(rt.data_dir))
    backlog = rt.sync_loop.outbox.backlog()
    tc: dict[str, Any]
    try:
        t = toolchain.resolve(rt.cfg.paths.node, rt.cfg.paths.pnpm)
        tc = {"node": t.node_version, "pnpm": t.pnpm_version}
    except RuntimeError as exc:
        tc = {"error": str(exc)}
    building = [v.version_id for v in PV.select(PV.version_id).where(PV.status.in_(("building", "deploying")))]
    return {
        "versions": counts,
        "queue": {"pending": queue.pending(), "running": building},
        "sandbox": {"layer": rt.sandbox_layer, "syscallFilter": syscall_filter_availability().available},
        "generator": rt.generator.name,
        "deployer": rt.deployer.name,
        "sync": backlog,
        "toolchain": tc,
        "disk": {"dataDir": str(rt.data_dir), "freeBytes": disk.free, "usedPercent": disk.percent},
        "jobs": rt.jobs.describe(),  # every background job: where it runs, its trigger, how it stops, alive
    }
