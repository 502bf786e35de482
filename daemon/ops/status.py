"""What `daemonctl status` shows of a running daemon: versions by status, queue, sandbox, sync backlog, disk."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psutil
from peewee import fn

from daemon.core.db import ProjectVersion as PV
from daemon.project import toolchain
from sandbox.probe import syscall_filter_availability

if TYPE_CHECKING:
    from daemon.core.background import Jobs
    from daemon.core.config import PathsConfig
    from daemon.core.layout import Layout
    from daemon.deployers.base import Deployer
    from daemon.generators import Generator
    from daemon.intake.queue import BuildQueue
    from sync.outbox import Outbox


class Status:
    """The status report of one daemon, from the things it names (each given by the composition root)."""

    def __init__(self, paths: PathsConfig, layout: Layout, outbox: Outbox, queue: BuildQueue, jobs: Jobs, *,
                 sandbox_layer: str, generator: Generator, deployer: Deployer) -> None:
        """`paths`: [paths] (the toolchain it names); `outbox`: sync's outbox (its backlog); `jobs`: every
        background job of the daemon."""
        self.paths = paths
        self.layout = layout
        self.outbox = outbox
        self.queue = queue
        self.jobs = jobs
        self.sandbox_layer = sandbox_layer
        self.generator = generator
        self.deployer = deployer

    def report(self) -> dict[str, Any]:
        """What `daemonctl status` shows."""
        counts: dict[str, int] = dict(PV.select(PV.status, fn.COUNT(PV.version_id)).group_by(PV.status).tuples())  # type: ignore[arg-type]
        data_dir = self.layout.data_dir
        disk = psutil.disk_usage(str(data_dir))
        backlog = self.outbox.backlog()
        tc: dict[str, Any]
        try:
            t = toolchain.resolve(self.paths.node, self.paths.pnpm)
            tc = {"node": t.node_version, "pnpm": t.pnpm_version}
        except RuntimeError as exc:
            tc = {"error": str(exc)}
        building = [v.version_id for v in PV.select(PV.version_id).where(PV.status.in_(("building", "deploying")))]
        return {
            "versions": counts,
            "queue": {"pending": self.queue.pending(), "running": building},
            "sandbox": {"layer": self.sandbox_layer, "syscallFilter": syscall_filter_availability().available},
            "generator": self.generator.name,
            "deployer": self.deployer.name,
            "sync": backlog,
            "toolchain": tc,
            "disk": {"dataDir": str(data_dir), "freeBytes": disk.free, "usedPercent": disk.percent},
            "jobs": self.jobs.describe(),  # every background job: where it runs, its trigger, how it stops, alive
        }
