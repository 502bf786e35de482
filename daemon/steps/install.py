"""The install: reused when the dependency inputs are unchanged and node_modules is intact; else `pnpm install`
with every script off (the daemon's uid, network on, the store writable), then the install-time scripts as the
build user without network (daemon/steps/scripts.py picks them)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.project import isolation, netconfig, toolchain
from daemon.project.failures import BuildFailed
from daemon.steps import sandboxed, scripts, sources
from daemon.steps.context import BuildContext, Sandboxing
from sandbox import safepath
from sandbox.output import disk_usage

INSTALL_MARKER = ".previewd-install.json"
MAX_LOCKFILE = sources.MAX_LOCKFILE  # the cap on pnpm-lock.yaml and pnpm's state file


def deps_fingerprint(files: dict[str, str], pnpm_version: str, manifests: Sequence[str] = ("package.json",)) -> str:
    """What an install depends on: pnpm's version, every package.json, the lockfile and the workspace file."""
    h = hashlib.sha256(pnpm_version.encode())
    for name in (*manifests, "pnpm-lock.yaml", "pnpm-workspace.yaml"):
        h.update(name.encode() + b"\0" + files.get(name, "").encode() + b"\0")
    return h.hexdigest()


def install_marker(workspace: Path) -> dict[str, Any] | None:
    """The marker of the last complete install (pnpm's state file there too, node_modules the daemon's own)."""
    try:
        st = os.lstat(workspace / "node_modules")
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return None
        safepath.read_regular(workspace, ["node_modules", ".modules.yaml"], MAX_LOCKFILE)
        data = json.loads(safepath.read_regular(workspace, ["node_modules", INSTALL_MARKER], 4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def reusable(ctx: BuildContext) -> dict[str, Any] | None:
    """The last install's marker when this build may keep it (a rebuild whose dependency inputs are unchanged)."""
    box = ctx.box
    fingerprint = deps_fingerprint(ctx.files, box.tc.pnpm_version, ctx.layout.manifests)
    if ctx.streamed is not None and ctx.streamed.accepted:  # this build's own install, run while generating
        return {"fingerprint": fingerprint, "bytes": ctx.streamed.nm_bytes}
    marker = install_marker(box.dirs.work) if ctx.base_files is not None else None
    return marker if marker is not None and marker.get("fingerprint") == fingerprint else None


def give_code_parts(box: Sandboxing) -> None:
    """What generated code may write: the workspace but node_modules, node_modules' cache dirs, its cache."""
    work = box.dirs.work
    for nm in [p for p in [work / "node_modules"] if p.is_dir() and not p.is_symlink()] + \
            isolation.package_modules(box.dirs, box.packages):
        for d in isolation.CODE_CACHE_DIRS:
            safepath.ensure_dir(work, [*nm.relative_to(work).parts, d])
            isolation.give_to_code(nm / d, box.ids, skip=())
    isolation.give_to_code(work, box.ids)
    isolation.give_to_code(box.dirs.cache, box.ids, skip=())


def reclaim_node_modules(ctx: BuildContext) -> None:
    """Before pnpm writes node_modules again: it must be the daemon's own, as the last install left it."""
    box = ctx.box
    work = box.dirs.work
    try:
        st = os.lstat(work / "node_modules")
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        safepath.remove_tree(work, ["node_modules"])
        ctx.log.step("node_modules was not the daemon's (an older layout): removed, installing afresh")
        return
    if box.ids is not None:
        parts = [work / "node_modules" / d for d in isolation.CODE_CACHE_DIRS]
        parts += [nm / d for nm in isolation.package_modules(box.dirs, box.packages)
                  for d in isolation.CODE_CACHE_DIRS]
        parts += scripts.plan(work, ctx.rt.cfg.build.allow_build_scripts).dependency_dirs
        for p in parts:
            if p.is_dir() and not p.is_symlink():
                isolation.reclaim(p)
        isolation.take_back(work)
        for rel in box.packages:  # pnpm writes each package's node_modules into its directory
            with contextlib.suppress(OSError):
                isolation.take_back(safepath.check_dir(work, rel.split("/")))


def install(ctx: BuildContext, walks: contextlib.AbstractContextManager[Any] | None = None) -> None:
    """`pnpm install` then the install-time scripts; sets node_modules' size for the disk cap. `walks` is held
    while the daemon walks the workspace (before and after pnpm): a streamed build writes files beside it."""
    rt, cfg, box, blog, files = ctx.rt, ctx.rt.cfg, ctx.box, ctx.log, ctx.files
    walks = walks or contextlib.nullcontext()
    tc, work = box.tc, box.dirs.work
    safepath.remove_tree(rt.data_dir, ["tmp", f"install-{ctx.v.version_id}"])  # HOME holds nothing but the daemon's
    home = safepath.ensure_dir(rt.data_dir, ["tmp", f"install-{ctx.v.version_id}"])
    try:
        with walks:
            netconfig.before_install(work, files, box.manifests, cfg.build.registry, reclaim=box.ids is not None,
                                     say=blog.step)
        view = isolation.install_view(rt.data_dir, rt.layout.store_dir, box.dirs, home, readonly=box.readonly,
                                      tmp_bytes=box.tmp_bytes) if box.confined else None
        cache = safepath.ensure_dir(rt.data_dir, ["cache"])
        env = sandboxed.env(cfg, tc, home, cache, store=rt.layout.store_dir)
        argv = toolchain.install_argv(tc, rt.layout.store_dir, cfg.build.registry, cache / "pnpm",
                                      (".", *box.packages))
        res = sandboxed.run(ctx, "install", argv, work, env, network=True, view=view, disk_roots=[(work, ())],
                            output_root=work)
    finally:
        safepath.remove_tree(rt.data_dir, ["tmp", home.name])
    if res.reason != "ok":
        raise BuildFailed("install_failed", f"pnpm install exited {res.exit_code}")
    with walks:
        _after_pnpm(ctx, res.disk_bytes)


def _after_pnpm(ctx: BuildContext, disk_bytes: int) -> None:
    """node_modules' size, the lockfile pnpm wrote, the code parts handed out, the install-time scripts, the
    marker."""
    rt, cfg, box, blog, files = ctx.rt, ctx.rt.cfg, ctx.box, ctx.log, ctx.files
    tc, work = box.tc, box.dirs.work
    nm_bytes = ctx.nm_bytes = max(0, disk_bytes - disk_usage(work, ("/node_modules",)))
    try:
        files["pnpm-lock.yaml"] = safepath.read_regular(work, ["pnpm-lock.yaml"], MAX_LOCKFILE).decode(
            "utf-8", "replace")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise BuildFailed("install_failed", f"pnpm-lock.yaml unusable: {exc}") from None
    if rt.warm_start is not None and files.get("pnpm-lock.yaml"):
        # Read right after pnpm wrote it, before any generated code ran: the packages this droplet now holds,
        # published to the fleet's store cache from the store pnpm verified (never from the workspace).
        rt.warm_start.installed(files["pnpm-lock.yaml"])
    give_code_parts(box)

    plan = scripts.plan(work, cfg.build.allow_build_scripts, (".", *box.packages))
    for note in plan.notes:
        blog.step(note)
    if plan.scripts:
        for d in plan.dependency_dirs:
            if n := scripts.unlink_shared(d):
                blog.step(f"{d.relative_to(work)}: {n} files shared with the store copied before its scripts")
            isolation.give_to_code(d, box.ids, skip=())
        names = ", ".join(f"{s.package} {s.event}" for s in plan.scripts)
        try:
            view = isolation.code_view(rt.data_dir, rt.layout.store_dir, box.dirs, extra_rw=plan.dependency_dirs,
                                       readonly=box.readonly, tmp_bytes=box.tmp_bytes,
                                       packages=box.packages) if box.confined else None
            res = sandboxed.run(ctx, "install scripts", scripts.argv(plan), work, box.env, network=False, view=view,
                                user=box.user, disk_roots=sandboxed.code_roots(box.dirs, plan.dependency_dirs),
                                disk_base=nm_bytes, output_root=work, shown=f"install-time scripts: {names}")
        finally:
            if box.ids is not None:
                for d in plan.dependency_dirs:
                    isolation.reclaim(d)
        if res.reason != "ok":
            raise BuildFailed("install_failed", f"an install-time script failed (exit {res.exit_code}); "
                                                "see the log")
    else:
        blog.step("install-time scripts: none")
    if (work / "node_modules").is_dir():
        # Fingerprint what was installed (package.json plus the lockfile pnpm just wrote).
        marker = {"fingerprint": deps_fingerprint(files, tc.pnpm_version, box.manifests), "bytes": nm_bytes}
        safepath.write_atomic(work, ["node_modules", INSTALL_MARKER], json.dumps(marker).encode())


class ReuseInstall:
    """Dependencies unchanged and node_modules intact: no install; its code parts handed out again."""

    name = "reuse install"
    timing = None  # a skipped install records no install time

    def applies(self, ctx: BuildContext) -> bool:
        return ctx.reusable is not None

    def run(self, ctx: BuildContext) -> None:
        marker = ctx.reusable or {}
        ctx.nm_bytes = int(marker.get("bytes") or 0)
        if ctx.streamed is not None and ctx.streamed.accepted:
            ctx.times.add("install", ctx.streamed.install_ms)  # this build's own install, run beside generation
            ctx.log.step("install: done while the generator wrote (package.json unchanged since it started)")
            give_code_parts(ctx.box)
            return
        ctx.times.install_skipped = True
        ctx.log.step(f"install skipped: {'every package.json' if ctx.layout.is_workspace else 'package.json'} and "
                     "lockfile unchanged, node_modules intact")
        give_code_parts(ctx.box)


class TakeBack:
    """Before a new install: node_modules is the daemon's again (not timed: the install's time is pnpm's and the
    scripts')."""

    name = "take back node_modules"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return ctx.reusable is None

    def run(self, ctx: BuildContext) -> None:
        reclaim_node_modules(ctx)


class Install:
    """`pnpm install` and the install-time scripts, timed together as `install`."""

    name = "install"
    timing = "install"

    def applies(self, ctx: BuildContext) -> bool:
        return ctx.reusable is None

    def run(self, ctx: BuildContext) -> None:
        install(ctx)
