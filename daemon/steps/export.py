"""The output crosses once: a real directory of the workspace (a link there is refused, never followed) is copied
into the staging dir no step can see (checks may still run); the zip, the deployer and the dist commit read that
copy (daemon/project/staging.py)."""

from __future__ import annotations

from daemon.project import frameworks, staging
from daemon.project.failures import BuildFailed
from daemon.steps import checking
from daemon.steps.context import BuildContext, Output


def export(ctx: BuildContext) -> None:
    """Leave the workspace, stage its output (BuildFailed no_output without one), judge checks under `fail`."""
    rt, blog, version_id, mono = ctx.rt, ctx.log, ctx.v.version_id, ctx.layout
    ctx.leave_workspace()
    workspace = ctx.box.dirs.work
    framework, out_rel = frameworks.find_output(workspace, mono.target.path if mono.target else "")
    if out_rel is None:
        raise BuildFailed("no_output", "the build produced none of: " + ", ".join(ctx.out_candidates))
    staged = staging.stage(rt, version_id, workspace, out_rel, blog.step)
    out = ctx.output = Output(rel=out_rel, dir=staging.root(rt, version_id) / out_rel, bytes=staged.bytes,
                              framework=framework)
    blog.step(f"output {out_rel}/ ({out.bytes} bytes in {staged.files} files, framework {framework or 'unknown'})")
    if rt.cfg.build.checks == "fail":  # every check must pass before the preview goes live
        checking.done(rt, ctx.pending_checks, ctx.writer, blog)


class Export:
    """The steps in the workspace are over; its output staged; under checks `fail`, every check passed."""

    name = "export"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        export(ctx)
