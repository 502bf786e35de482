"""The build's end: live at once when the deployer confirmed (daemon/publish/golive.py, the one go-live path), else
`deploying` until the platform confirms (deploywatch); never live once another droplet holds the project."""

from __future__ import annotations

import time

from daemon.project.failures import BuildFailed
from daemon.publish import deploywatch, golive
from daemon.steps.context import BuildContext


class Finish:
    """Go live, or wait for the platform's confirmation."""

    name = "finish"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        rt, v = ctx.rt, ctx.v
        fields = {"build_duration_ms": int((time.monotonic() - ctx.started) * 1000),
                  "add_timings": ctx.times.breakdown(), **ctx.fields,
                  "deploy_duration_ms": ctx.times.ms.get("deploy", 0)}
        state = fields.pop("deploy_state")
        if (lost := rt.fleet.lost_lease(v.user_id, v.project_id)) is not None:
            raise BuildFailed("interrupted", lost)  # another droplet writes the project now: never go live
        if state == "deployed":
            ctx.v = golive.make_live(rt, v.version_id, **fields)
            return
        # Confirmation comes later (webhook or polling); the row stays 'deploying' with its deployment id.
        deploywatch.watch(rt, ctx.record(**fields))
