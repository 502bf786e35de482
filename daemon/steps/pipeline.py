"""The build pipeline: the ordered list of steps one build runs (each in its own module, sharing one
BuildContext), the lease checked between them, and how a build ends: live, deploying, or failed once with its
reason and its log.

prepare, generate (restore for a rollback), warm-hold, write, install (or reuse it), audit, snapshot, bundle,
verdict, export, warm-keep, artifact, deploy, finish.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from daemon.core import logging_setup
from daemon.core.db import ProjectVersion
from daemon.core.events import BuildDone
from daemon.project import staging
from daemon.project.buildlog import BuildLog
from daemon.project.failures import BuildFailed
from daemon.publish import golive
from daemon.steps import checking, checks, reclaim, warm
from daemon.steps.artifact import Zip
from daemon.steps.auditing import StartAudit
from daemon.steps.bundle import Bundle, Verdict
from daemon.steps.context import BuildContext, Step, StepTimes, VersionWriter
from daemon.steps.deploy import Deploy
from daemon.steps.export import Export
from daemon.steps.finish import Finish
from daemon.steps.generate import Generate, Restore
from daemon.steps.install import Install, ReuseInstall, TakeBack
from daemon.steps.prepare import Prepare
from daemon.steps.sources import Snapshot
from daemon.steps.write import Write

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.build")

__all__ = ["PHASES", "BuildFailed", "Pipeline", "StepTimes", "run_steps", "steps_for"]

# What a person watching a build is told it is doing: the steps grouped into the phases of the dashboard's step
# progress (queued before the worker takes it, checking for the render check after it is live).
PHASES = ("queued", "generating", "installing", "building", "deploying", "checking")
PHASE_OF_STEP = {"prepare": "generating", "generate": "generating", "restore": "generating",
                 "write": "installing", "reuse install": "installing", "take back node_modules": "installing",
                 "install": "installing", "audit": "installing", "snapshot": "building", "bundle": "building",
                 "verdict": "building", "export": "building", "artifact": "building", "deploy": "deploying",
                 "finish": "deploying"}


def steps_for(kind: str) -> list[Step]:
    """The steps of a build of `kind` in order: a first build, a rebuild and a delta generate from their base
    (none for a first build); a rollback restores its target's recorded sources instead."""
    return [Prepare(), Restore() if kind == "rollback" else Generate(), warm.Hold(), Write(), ReuseInstall(),
            TakeBack(), Install(), StartAudit(), Snapshot(), Bundle(), Verdict(), Export(), warm.Keep(), Zip(),
            Deploy(), Finish()]


# Steps whose time counts under their own name in the version's timings without a `timing` of their own.
NAMED_TIMINGS = frozenset({"write", "export"})


def run_steps(ctx: BuildContext, steps: Sequence[Step]) -> None:
    """Run the steps that apply, the lease checked before each; a step's time counts under its timing key when it
    ends. On any failure the build's undo runs (and a disk_limit empties the project's caches); the workspace's
    scratch goes on every exit."""
    try:
        for step in steps:
            if not step.applies(ctx):
                continue
            ctx.check_lease()
            ctx.log.enter(PHASE_OF_STEP.get(step.name, "building"))
            t0 = time.monotonic()
            step.run(ctx)
            if (key := step.timing or (step.name if step.name in NAMED_TIMINGS else None)) is not None:
                ctx.times.add(key, int((time.monotonic() - t0) * 1000))
    except BaseException as exc:
        if isinstance(exc, BuildFailed) and exc.reason == "disk_limit" and ctx.dirs is not None:
            reclaim.drop_caches(ctx.dirs, ctx.log.step)
        ctx.undo.close()
        raise
    finally:
        ctx.leave_workspace()


def _queued_ms(v: ProjectVersion) -> int:
    """How long the version waited between its request and its build's start."""
    created = v.created_at
    if not isinstance(created, datetime):
        return 0
    now = datetime.now(created.tzinfo or UTC)
    return max(0, int((now - (created if created.tzinfo else created.replace(tzinfo=UTC))).total_seconds() * 1000))


class Pipeline:
    """Runs one version's build from queued to deployed or failed."""

    def __init__(self, rt: Runtime, steps: Callable[[str], Sequence[Step]] = steps_for,
                 warm_pool: warm.Pool | None = None) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        self.steps = steps
        # Set at shutdown past the grace period: the running step is killed and the version is `interrupted`.
        self.cancel = threading.Event()
        # The project of the build running now (one worker): a fleet droplet checks its lease before each step.
        self.project: tuple[str, str] | None = None
        self.pending_checks = checks.Pending()
        # The repair loop (daemon/intake/repair.py, set by the composition root): told each build's outcome, it
        # returns an attempt to queue; `enqueue` queues it. None: no loop (pipeline tests).
        self.on_outcome: Callable[[str], str | None] | None = None
        self.enqueue: Callable[[str], None] | None = None
        # The projects' warm bundlers (daemon/steps/warm.py); their job is declared by `previewd serve`.
        self.warm = warm_pool if warm_pool is not None else \
            warm.Pool(rt.cfg, rt.sandbox_layer, draining=lambda: rt.fleet.draining)

    def _check_lease(self) -> None:
        """A fleet droplet that lost the project's lease (paused past its TTL) stops its build here."""
        if self.project is not None and (lost := self.rt.fleet.lapsed(*self.project)) is not None:
            raise BuildFailed("interrupted", lost)

    def run(self, version_id: str) -> None:
        """Build one queued version; never raises for anything the build does."""
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
        if v is None or v.status != "queued":
            return
        with logging_setup.bind(version_id=version_id, project_id=v.project_id):
            try:
                self._run_version(v, version_id)
            finally:
                staging.discard(self.rt, version_id)  # after the dist commit, or on any failure

    def _outcome(self, version_id: str) -> str | None:
        return self.on_outcome(version_id) if self.on_outcome is not None else None

    def _queue(self, version_id: str | None) -> None:
        if version_id is not None and self.enqueue is not None:
            self.enqueue(version_id)

    def _run_version(self, v: ProjectVersion, version_id: str) -> None:
        rt = self.rt
        nxt: str | None = None
        blog = BuildLog(rt.layout.log_path(version_id), redact=self.cfg.secrets.values(),
                        cap_bytes=self.cfg.limits.log_mb * 2**20)
        rt.live_logs[version_id] = blog
        ctx = BuildContext(rt=rt, v=v, log=blog, writer=VersionWriter(rt.outbox, version_id),
                           check_lease=self._check_lease, cancel=self.cancel, pending_checks=self.pending_checks,
                           warm=self.warm)
        ctx.times.add("queue", _queued_ms(v))
        self.project = (v.user_id, v.project_id)
        try:
            if (moved := rt.fleet.build_may_start(v)) is not None:
                raise BuildFailed("interrupted", moved)
            v = ctx.record(status="building")
            blog.step(f"build {version_id} for {v.user_id}/{v.project_id} ({v.kind})")
            run_steps(ctx, self.steps(v.kind))
        except BuildFailed as exc:
            self._failed(ctx, exc)
            nxt = self._outcome(version_id)  # before the waiters hear of it: a build answer waits for the loop
        except Exception as exc:  # the worker must survive anything; the version must not stay 'building'
            log.exception("build %s crashed", version_id)
            with contextlib.suppress(Exception):
                checking.done(rt, self.pending_checks, ctx.writer, blog, judge=False)
            message = reclaim.disk_full_note(rt, ctx.v, f"internal error: {type(exc).__name__}: {exc}")
            blog.step(f"failed: {message}")
            ctx.record(status="failed", failure_reason="build_failed", failure_message=message[:2000])
        finally:
            self.project = None
            rt.live_logs.pop(version_id, None)
            blog.close()
            rt.events.publish(BuildDone(ctx.v))
            rt.notify(version_id)
            rt.sync_nudge()
        v = ctx.v
        if v.status in ("deployed", "deploying"):
            # In the worker, after the answer: the browser never competes with a build for the machine. Checks
            # still running under `record` are recorded by a thread of their own (their lines go to the log file
            # after the fact); the project's next build waits for them before it writes the workspace.
            key = (v.user_id, v.project_id)
            late = (lambda: self.pending_checks.add(
                key, lambda: checking.record_late(rt, self.pending_checks, version_id, blog.path))) \
                if self.pending_checks.running(version_id) else None
            golive.after_live(rt, v, dist=ctx.dist, inline=True, first=late)
            nxt = self._outcome(version_id)  # after the render check (inline): a repair attempt passed, or a blank page
        self._queue(nxt)

    def _failed(self, ctx: BuildContext, exc: BuildFailed) -> None:
        """A step's BuildFailed: the version fails once, with its reason, its message and the times so far."""
        message = reclaim.disk_full_note(self.rt, ctx.v, exc.message)
        checking.done(self.rt, self.pending_checks, ctx.writer, ctx.log, judge=False)  # recorded, never judged
        ctx.log.step(f"failed: {exc.reason}: {message}")
        times = ctx.times
        ctx.record(status="failed", failure_reason=exc.reason, failure_message=message[:2000],
                   build_duration_ms=int((time.monotonic() - ctx.started) * 1000),
                   install_duration_ms=times.install_ms or None, install_skipped=times.install_skipped,
                   add_timings=times.breakdown())
