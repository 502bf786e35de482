"""Write the workspace from the record: the version's file set (sanitized: package.json policy, no foreign
package-manager config, a pnpm workspace's globs beside the daemon's policy) and nothing else, but for
node_modules and a workspace's kept build output; then the sandboxing every later step shares."""

from __future__ import annotations

import os

from daemon.core.db import ProjectVersion
from daemon.project import isolation, monorepo, netconfig, packagejson, toolchain
from daemon.project.workspace import materialize
from daemon.steps import install, sandboxed
from daemon.steps.context import BuildContext, Sandboxing
from daemon.steps.prepare import project_dirs
from sandbox import safepath


def _log_policy(ctx: BuildContext) -> None:
    box = ctx.box
    who = box.user or f"the daemon's uid {os.geteuid()}"
    if box.confined:
        ctx.log.step(f"isolation: each step in its own bubblewrap view (host read-only; this project's workspace "
                     f"and cache only, node_modules read-only; other projects, the store and the daemon's files "
                     f"hidden; own pid and network namespaces); generated code runs as {who}")
    else:
        ctx.log.step(f"WARNING {isolation.UNCONFINED_WARNING}")
    allowed = ", ".join(ctx.rt.cfg.build.allow_build_scripts) or "none"
    ctx.log.step("install policy: `pnpm install --ignore-scripts --ignore-pnpmfile` with the side-effects cache "
                 "and package-manager switching off (the only step with network, and it runs no generated code; "
                 "registry, proxy and TLS pinned on its command line, no package-manager config but the daemon's); "
                 f"then, without network: allow-listed dependency scripts ({allowed}) and the project's own "
                 "preinstall/install/postinstall/prepare; then `pnpm build` without network")


def _target_request(ctx: BuildContext, tc: toolchain.Toolchain) -> str | None:
    """The requested target package; a rollback inherits its target's and warns when the toolchain moved on."""
    v, requested = ctx.v, ctx.v.target_package
    if v.kind == "rollback":
        target = ProjectVersion.get_or_none(ProjectVersion.version_id == v.rollback_of)
        requested = requested or (target.target_package if target else None)
        recorded = (target.node_version, target.pnpm_version) if target else (None, None)
        if recorded != (None, None) and recorded != (tc.node_version, tc.pnpm_version):
            ctx.log.step(f"WARNING recorded toolchain node {recorded[0]} / pnpm {recorded[1]} differs from this "
                         f"machine's node {tc.node_version} / pnpm {tc.pnpm_version}; the lockfile still pins deps")
    return requested


def settle(ctx: BuildContext) -> None:
    """Sanitize the file set (package.json policy, foreign config dropped, the workspace file's policy) and settle
    the layout and the sandboxing every later step shares; nothing is written."""
    cfg, v, blog = ctx.rt.cfg, ctx.v, ctx.log
    tc = toolchain.for_config(cfg)
    dirs = ctx.dirs = project_dirs(ctx)  # again: generation can take minutes
    # A pnpm workspace keeps its package globs beside the daemon's policy (monorepo.py); else the daemon's file.
    mono = ctx.mono = monorepo.prepare(ctx.files, ctx.base_files, _target_request(ctx, tc),
                                       (ctx.target_hint, monorepo.inherited_target(v)),
                                       cfg.build.allow_build_scripts, blog)
    ctx.files = netconfig.drop_foreign(packagejson.sanitize(ctx.files, blog, mono.manifests, mono.local_names), blog)
    ctx.sandboxing = Sandboxing(
        tc=tc, dirs=dirs, confined=isolation.confinement(cfg).confined, readonly=isolation.toolchain_under_tmp(tc),
        tmp_bytes=cfg.limits.memory_mb * 2**20, user=isolation.code_user(cfg), ids=isolation.code_ids(cfg), env={},
        packages=mono.dirs)


def make_home(ctx: BuildContext) -> None:
    """HOME starts empty (the xdg cache stays, and counts) and goes with the workspace's scratch; the code steps'
    environment points there."""
    cfg, box, dirs = ctx.rt.cfg, ctx.box, ctx.box.dirs
    safepath.remove_tree(dirs.cache, ["home"])
    home = safepath.ensure_dir(dirs.cache, ["home"])
    ctx.workspace_scratch.callback(safepath.remove_tree, dirs.cache, ["home"])
    box.env = sandboxed.env(cfg, box.tc, home, dirs.xdg_cache)
    box.env["INIT_CWD"] = str(dirs.work)


def write_workspace(ctx: BuildContext) -> None:
    """Sanitize the file set, settle the sandboxing, write the workspace, and find whether the install stays."""
    if ctx.streamed is not None:
        ctx.streamed.finish()  # the install started during generation ends before the workspace is rewritten
    settle(ctx)
    _log_policy(ctx)
    if ctx.streamed is not None:
        ctx.streamed.adopt(ctx)  # its lockfile joins the file set when the install it made still holds
    v, blog, mono, files, workspace = ctx.v, ctx.log, ctx.layout, ctx.files, ctx.box.dirs.work

    # Base snapshot + contract, nothing else survives (but for node_modules, and a workspace's packages'
    # node_modules and build output: monorepo.output_keep). Checks of the previous version end first.
    ctx.pending_checks.wait((v.user_id, v.project_id), blog.step)
    ctx.kept = monorepo.output_keep(mono, files) if mono.is_workspace else []
    materialize(workspace, files, keep=("node_modules", *ctx.kept))
    make_home(ctx)
    ctx.reusable = install.reusable(ctx)


class Write:
    """The workspace written, the sandboxing settled."""

    name = "write"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        write_workspace(ctx)
