"""The bundle: `pnpm build` (or a workspace's filtered build) in the no-network code view, with the checks beside
it when the script's type check can be split off, or the project's warm bundler (daemon/steps/warm.py) when it may;
then its verdict, after the audit's."""

from __future__ import annotations

import json
import time

import sandbox
from daemon.project import frameworks, isolation, monorepo, toolchain
from daemon.project.failures import BuildFailed
from daemon.steps import auditing, checking, checks, sandboxed
from daemon.steps.context import BuildContext
from sandbox import safepath


def bundle(ctx: BuildContext) -> None:
    """Run the build script (stale output removed first); start the checks beside it or after it."""
    rt, cfg, box, blog, mono = ctx.rt, ctx.rt.cfg, ctx.box, ctx.log, ctx.layout
    workspace, version_id = box.dirs.work, ctx.v.version_id
    # Stale output goes; the project's own sources (frameworks.SOURCE_DIRS) stay for the bundler.
    for rel in ctx.out_candidates:
        if rel not in frameworks.SOURCE_DIRS:
            safepath.remove_tree(workspace, rel.split("/"))
    view = isolation.code_view(rt.data_dir, rt.layout.store_dir, box.dirs, readonly=box.readonly,
                               tmp_bytes=box.tmp_bytes, packages=box.packages) if box.confined else None
    plan = checks.plan(workspace, cfg.build.checks, ctx.out_candidates)
    build_argv, build_env, shown, prints = toolchain.build_argv(box.tc), box.env, None, dict[str, str]()
    if not (plan.typecheck or plan.lint):
        record = checks.skipped_record(plan)
        blog.step("checks: none run, the build script runs as written (" + "; ".join(
            f"{k} skipped: {c['detail']}" for k, c in record.items()) + ")")
        ctx.record(checks=record)
    elif mono.is_workspace:  # the workspace's build goes through `pnpm --filter`: nothing to split
        blog.step("checks run after the workspace's build")
    else:
        blog.step(plan.split_note or "checks run after the build script")
        if plan.bundle is not None:  # the type check runs beside the rest of the chain
            ctx.pending_checks.begin(version_id, checking.start(ctx, plan))
            build_argv, build_env = checks.bundle_argv(plan.bundle), checks.bundle_env(box.env, workspace)
            shown = f"build (type check split off): {plan.bundle}"
    if mono.is_workspace:
        build_argv, prints = monorepo.plan_build(box.tc, mono, ctx.files, workspace, blog)
    t0 = time.monotonic()
    plain = (plan.bundle or _script(ctx)).strip() == "vite build"  # what a warm bundler can stand in for
    res = _warm(ctx, plain)
    ctx.bundled_warm = (res is not None) if plain else None
    if res is None:
        res = sandboxed.run(ctx, "build", build_argv, workspace, build_env, network=cfg.sandbox.build_network,
                            view=view, user=box.user, disk_roots=sandboxed.code_roots(box.dirs),
                            disk_base=ctx.nm_bytes, output_root=workspace, shown=shown)
    ctx.bundle = res
    ctx.times.add("bundle_warm" if ctx.bundled_warm else "bundle_cold", int((time.monotonic() - t0) * 1000))
    if mono.is_workspace and res.reason == "ok":
        monorepo.mark_built(workspace, mono, prints)
    if res.reason == "ok" and not ctx.pending_checks.running(version_id) and (plan.typecheck or plan.lint):
        ctx.pending_checks.begin(version_id, checking.start(ctx, plan))


def _warm(ctx: BuildContext, plain: bool) -> sandbox.Result | None:
    """The project's warm bundler's result, or None (the log says why) when the cold build runs instead. `plain`:
    the build command is `vite build` alone (else the warm bundler cannot stand in for it)."""
    pool = ctx.warm
    if pool is None:
        return None
    why = pool.why_cold(ctx)
    if why is None and not plain:
        why = "the build runs more than `vite build` here (its type check is not split off)"
    if why is None:
        res = pool.rebuild(ctx)
        if not isinstance(res, str):
            return res
        why = res
    ctx.log.step(f"warm bundler: cold build: {why}")
    return None


def _script(ctx: BuildContext) -> str:
    try:
        script = json.loads(ctx.files.get("package.json", "{}")).get("scripts", {}).get("build")
    except (ValueError, AttributeError):
        return ""
    return script if isinstance(script, str) else ""


class Bundle:
    """The build script; its exit is judged by the Verdict step, once the audit had its say."""

    name = "bundle"
    timing = "bundle"  # and `bundle_warm` or `bundle_cold` (counted by the step itself)

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        bundle(ctx)


class Verdict:
    """The audit's verdict first (audit_failed under `fail` is the reason even when the bundle failed too), then
    the bundle's (build_failed)."""

    name = "verdict"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        auditing.settle(ctx)
        res = ctx.bundle
        if res is None or res.reason != "ok":
            raise BuildFailed("build_failed", f"pnpm build exited {res.exit_code if res else None}")
