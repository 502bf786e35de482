"""First step: refuse to build without the isolation layer, check the project's directories before anything
touches them (a planted link fails the build here), and read the base version's sources."""

from __future__ import annotations

from daemon.project import isolation
from daemon.project.failures import BuildFailed
from daemon.steps import sources
from daemon.steps.context import BuildContext


def project_dirs(ctx: BuildContext) -> isolation.ProjectDirs:
    """The version's project directories, checked (BuildFailed build_failed on an unsafe layout)."""
    try:
        return isolation.project_dirs(ctx.rt.data_dir, ctx.v.user_id, ctx.v.project_id)
    except isolation.UnsafeLayout as exc:
        raise BuildFailed("build_failed", str(exc)) from None


class Prepare:
    """Isolation available, project directories safe, the base's sources read."""

    name = "prepare"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        conf = isolation.confinement(ctx.rt.cfg)
        if not conf.allowed:
            raise BuildFailed("sandbox_unavailable", f"builds are refused without the isolation layer: {conf.why}. "
                                                     f"To fix: {conf.fix}")
        ctx.dirs = project_dirs(ctx)
        v = ctx.v
        if v.parent_version_id:
            ctx.base_files = sources.read_base(ctx.rt.repo(v.user_id, v.project_id), v.parent_version_id,
                                               ctx.log.step, ctx.rt.cfg.generator.max_file_bytes)
