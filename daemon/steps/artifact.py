"""The artifact zip of the staged output, in the local object store; registered, counted and uploaded only once
the deploy succeeded (a failed build leaves no artifact behind)."""

from __future__ import annotations

from daemon.publish import artifacts
from daemon.steps.context import BuildContext


class Zip:
    """Zip the staged output; the zip is removed if the build fails before its deploy succeeded."""

    name = "artifact"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        rt, v = ctx.rt, ctx.v
        key = rt.layout.artifact_key(v.user_id, v.project_id, v.version_id)
        zip_path = rt.layout.local_object(key)
        ctx.undo.callback(zip_path.unlink, missing_ok=True)
        ctx.artifact = (key, zip_path, artifacts.zip_output(ctx.out.dir, zip_path))
