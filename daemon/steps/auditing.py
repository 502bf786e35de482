"""The audit as a build runs it: the StartAudit step starts `pnpm audit` beside the snapshot and the build, on a
daemon-made copy of the lockfile in its own view with network; `settle` waits for it and gives its verdict. The
audit itself (cache, policy) is daemon/steps/audit.py."""

from __future__ import annotations

from pathlib import Path

import sandbox
from daemon.core import quotas
from daemon.project import isolation, netconfig, toolchain
from daemon.project.failures import BuildFailed
from daemon.steps import audit, sandboxed
from daemon.steps.context import BuildContext
from sandbox import safepath


def start_job(ctx: BuildContext, scratch: Path) -> audit.AuditJob:
    """The audit of the build's lockfile in `scratch` (a daemon-made copy), in its own view with network."""
    rt, box, cfg = ctx.rt, ctx.box, ctx.rt.cfg
    safepath.remove_tree(rt.data_dir, ["tmp", scratch.name])  # holds nothing but the daemon's copies
    safepath.ensure_dir(rt.data_dir, ["tmp", scratch.name, "home"])
    env = sandboxed.env(cfg, box.tc, scratch / "home", scratch / "home" / ".cache")
    argv = toolchain.audit_argv(box.tc, cfg.build.audit_registry, scratch / "home" / ".cache" / "pnpm")
    view = isolation.scratch_view(rt.data_dir, rt.layout.store_dir, scratch, readonly=box.readonly,
                                  tmp_bytes=box.tmp_bytes) if box.confined else None
    lines: list[str] = []
    version_id = ctx.v.version_id

    def run_step(cwd: Path) -> sandbox.Result:
        # Not niced: on a loaded machine a niced audit starved and then held the version back at its end; it
        # mostly waits on the network, so it takes little CPU from `pnpm build` anyway.
        netconfig.purge(cwd, {}, cache_dirs=(), reclaim=False)  # a networked step: the daemon's config only
        res = sandbox.run(argv, cwd=cwd, env=env,
                          limits=sandboxed.limits(cfg), on_line=lines.append, network=True, output_root=None,
                          layer=rt.sandbox_layer, cancel=ctx.cancel, view=view, disk_roots=[(scratch, ())])
        quotas.add_cpu(version_id, res.cpu_seconds)
        return res

    return audit.start(cfg, ctx.files.get("pnpm-lock.yaml", ""), ctx.files.get("package.json", ""), run_step,
                 scratch, lines, rt.data_dir)


def settle(ctx: BuildContext) -> None:
    """Wait for the build's audit (if one runs), cache and record its outcome, judge it (BuildFailed
    audit_failed under `fail`)."""
    job = ctx.audit_job
    if job is None:
        return
    cfg = ctx.rt.cfg
    job.wait()
    audit.store(ctx.rt.data_dir, cfg, job.lockfile, job.outcome)
    ctx.record(audit_status=audit.status_of(job))
    try:
        audit.judge(cfg, job, ctx.log.step)
    except audit.AuditFailed as exc:
        raise BuildFailed("audit_failed", str(exc)) from exc


class StartAudit:
    """Beside the snapshot and the build, on a copy of the lockfile (it needs the network, the build must not
    have it), started as soon as the lockfile is known; its thread never outlives the steps in the workspace."""

    name = "audit"
    timing = None  # it runs beside the build; its wait counts in nothing

    def applies(self, ctx: BuildContext) -> bool:
        return ctx.rt.cfg.build.audit != "off"

    def run(self, ctx: BuildContext) -> None:
        scratch = ctx.rt.data_dir / "tmp" / f"audit-{ctx.v.version_id}"
        ctx.workspace_scratch.callback(safepath.remove_tree, ctx.rt.data_dir, ["tmp", scratch.name])
        job = ctx.audit_job = start_job(ctx, scratch)
        ctx.workspace_scratch.callback(job.wait)  # a step that failed before the audit's turn
