"""The build pipeline: generate, write, install, audit, build, find output, zip, deploy, record.

Long because the steps of one build, and how each applies its isolation view, read in order here; the policies
themselves live beside it (isolation, scripts, audit, packagejson, publish).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sandbox
from daemon.core import logging_setup, quotas, versions
from daemon.core.contract import ContractError, apply_contract
from daemon.core.db import ProjectVersion, database
from daemon.core.events import BuildDone, ChecksRecorded
from daemon.deployers.base import DeployError, DeployRequest
from daemon.generators import GenerationError, GenerationRequest
from daemon.project import frameworks, isolation, monorepo, netconfig, packagejson, staging, toolchain
from daemon.project.buildlog import BuildLog
from daemon.project.failures import BuildFailed
from daemon.project.workspace import materialize
from daemon.publish import artifacts, deploywatch, golive
from daemon.steps import audit, checks, reclaim, scripts, sources
from sandbox import safepath
from sandbox.output import disk_usage

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.build")

INSTALL_MARKER = ".previewd-install.json"
LOW_DISK_BYTES = 4 * 2**20  # below this free on the data dir's disk, a failed build is called a full disk
SANDBOX_REASONS = {"cpu_limit", "memory_limit", "output_limit", "timeout", "pids_limit", "disk_limit"}
MAX_LOCKFILE = 32 * 2**20
CHECKS_NICE = 10


@dataclass
class StepTimes:
    install_ms: int = 0
    build_ms: int = 0
    deploy_ms: int = 0
    install_skipped: bool = False
    generate_ms: int = 0

    def breakdown(self) -> dict[str, int]:
        """The version's `timings` (ms per step; checks and render are added when they end)."""
        return {"generate": self.generate_ms, "install": self.install_ms, "bundle": self.build_ms,
                "deploy": self.deploy_ms}


def _deps_fingerprint(files: dict[str, str], pnpm_version: str, manifests: Sequence[str] = ("package.json",)) -> str:
    h = hashlib.sha256(pnpm_version.encode())
    for name in (*manifests, "pnpm-lock.yaml", "pnpm-workspace.yaml"):
        h.update(name.encode() + b"\0" + files.get(name, "").encode() + b"\0")
    return h.hexdigest()


@dataclass
class Built:
    """What a build produced: the row's new fields, and where its output lies (staging root, output dir)."""

    fields: dict[str, Any]
    dist: tuple[Path, str]


@dataclass
class _Steps:
    """What every step of one build shares: toolchain, directories, whether views apply, who runs the code."""

    tc: toolchain.Toolchain
    dirs: isolation.ProjectDirs
    confined: bool
    readonly: tuple[Path, ...]
    tmp_bytes: int
    user: str | None  # who generated code runs as (None: the daemon's uid)
    ids: tuple[int, int] | None  # its (uid, gid) when that differs from the daemon's
    env: dict[str, str]
    packages: tuple[str, ...] = ()  # a workspace's package dirs below the root (monorepo.Layout.dirs)

    @property
    def manifests(self) -> tuple[str, ...]:
        """Every package.json whose change means a new install."""
        return ("package.json", *(f"{d}/package.json" for d in self.packages))


def _code_roots(dirs: isolation.ProjectDirs, extra: Sequence[Path] = ()) -> list[tuple[Path, Sequence[str]]]:
    """Everything a step running generated code may write (its disk cap): the workspace without node_modules
    (read-only to it), node_modules' cache dirs, the project's cache, and any extra writable dirs."""
    nm = dirs.work / "node_modules"
    return [(dirs.work, ("/node_modules",)), *[(nm / d, ()) for d in isolation.CODE_CACHE_DIRS],
            (dirs.cache, ()), *[(p, ()) for p in extra]]


def _install_marker(workspace: Path) -> dict[str, Any] | None:
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


class Pipeline:
    """Runs one version's build from queued to deployed or failed."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        # Set at shutdown past the grace period: the running step is killed and the version is `interrupted`.
        self.cancel = threading.Event()
        # The project of the build running now (one worker): a fleet droplet checks its lease before each step.
        self.project: tuple[str, str] | None = None
        self.pending_checks = checks.Pending()

    # -- helpers -----------------------------------------------------------------------------------------
    def _limits(self) -> sandbox.Limits:
        lim = self.cfg.limits
        return sandbox.Limits(cpu_seconds=lim.cpu_seconds, memory_bytes=lim.memory_mb * 2**20,
                              output_bytes=lim.output_mb * 2**20, wall_seconds=lim.wall_seconds, pids=lim.pids,
                              log_bytes=lim.log_mb * 2**20, disk_bytes=lim.disk_mb * 2**20)

    def _env(self, tc: toolchain.Toolchain, home: Path, xdg_cache: Path,
             store: Path | None = None) -> dict[str, str]:
        """The whole environment of a build step: nothing of the daemon's own. Only the install gets the store."""
        extra = {
            "PATH": tc.path_env,
            "NODE_OPTIONS": f"--max-old-space-size={self.cfg.build.node_max_old_space_mb}",
            "npm_config_update_notifier": "false",
            "PNPM_HOME": str(home / ".pnpm-home"),
            "XDG_CACHE_HOME": str(xdg_cache),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
        }
        if store is not None:
            extra["npm_config_store_dir"] = extra["PNPM_CONFIG_STORE_DIR"] = str(store)
        return sandbox.safe_env(extra, home=home)

    def _views(self, tc: toolchain.Toolchain) -> tuple[bool, tuple[Path, ...], int]:
        """(confined, read-only toolchain binds, /tmp size) for this build's steps."""
        return (isolation.confinement(self.cfg).confined, isolation.toolchain_under_tmp(tc),
                self.cfg.limits.memory_mb * 2**20)

    def _check_lease(self) -> None:
        """A fleet droplet that lost the project's lease (paused past its TTL) stops its build here."""
        if self.project is not None and (lost := self.rt.fleet.lapsed(*self.project)) is not None:
            raise BuildFailed("interrupted", lost)

    def _run(self, step: str, argv: list[str], cwd: Path, env: dict[str, str], blog: BuildLog, *,
             network: bool, view: sandbox.FsView | None, user: str | None = None,
             disk_roots: Sequence[tuple[Path, Sequence[str]]] = (), disk_base: int = 0,
             output_root: Path | None = None, shown: str | None = None, meter: str) -> sandbox.Result:
        self._check_lease()
        blog.step("$ " + (shown or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv))))
        res = sandbox.run(argv, cwd=cwd, env=env, limits=self._limits(), on_line=blog.line,
                          network=network, output_root=output_root, layer=self.rt.sandbox_layer,
                          user=user, cancel=self.cancel, view=view, disk_roots=disk_roots, disk_base=disk_base)
        quotas.add_cpu(meter, res.cpu_seconds)  # `meter`: the version whose usage this step is, breach or not
        self._check_lease()  # a droplet paused during the step stops before going on with its result
        blog.step(f"{step}: {res.reason} (exit {res.exit_code}, {res.wall_seconds:.1f}s wall, "
                  f"{res.cpu_seconds:.1f}s cpu, peak {res.peak_memory_bytes / 2**20:.0f} MiB)")
        if res.reason == "cancelled":
            raise BuildFailed("interrupted", f"{step} stopped: the daemon shut down and its grace period ran out")
        if res.reason in SANDBOX_REASONS:
            raise BuildFailed(res.reason, f"{step} stopped: {res.detail}")
        return res

    # -- the pipeline ------------------------------------------------------------------------------------
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

    def _run_version(self, v: ProjectVersion, version_id: str) -> None:
        rt = self.rt
        blog = BuildLog(rt.layout.log_path(version_id), redact=self.cfg.secrets.values(),
                        cap_bytes=self.cfg.limits.log_mb * 2**20)
        rt.live_logs[version_id] = blog
        started = time.monotonic()
        times = StepTimes()
        dist: tuple[Path, str] | None = None
        self.project = (v.user_id, v.project_id)
        try:
            if (moved := rt.fleet.build_may_start(v)) is not None:
                raise BuildFailed("interrupted", moved)
            v = versions.update(rt.outbox, version_id, status="building")
            blog.step(f"build {version_id} for {v.user_id}/{v.project_id} ({v.kind})")
            built = self._build(v, blog, times)
            total_ms = int((time.monotonic() - started) * 1000)
            v = self._finish(v, {"build_duration_ms": total_ms, "add_timings": times.breakdown(), **built.fields})
            dist = built.dist
        except BuildFailed as exc:
            message = self._disk_full_note(v, exc.message)
            self._checks_done(v.version_id, blog, judge=False)  # a failed build still records its checks
            blog.step(f"failed: {exc.reason}: {message}")
            v = versions.update(rt.outbox, version_id, status="failed", failure_reason=exc.reason,
                                failure_message=message[:2000],
                                build_duration_ms=int((time.monotonic() - started) * 1000),
                                install_duration_ms=times.install_ms or None, install_skipped=times.install_skipped,
                                add_timings=times.breakdown())
        except Exception as exc:  # the worker must survive anything; the version must not stay 'building'
            log.exception("build %s crashed", version_id)
            with contextlib.suppress(Exception):
                self._checks_done(version_id, blog, judge=False)
            message = self._disk_full_note(v, f"internal error: {type(exc).__name__}: {exc}")
            blog.step(f"failed: {message}")
            v = versions.update(rt.outbox, version_id, status="failed", failure_reason="build_failed",
                                failure_message=message[:2000])
        finally:
            self.project = None
            rt.live_logs.pop(version_id, None)
            blog.close()
            rt.events.publish(BuildDone(v))
            rt.notify(version_id)
            rt.sync_nudge()
        if v.status in ("deployed", "deploying"):
            # In the worker, after the answer: the browser never competes with a build for the machine. Checks
            # still running under `record` are recorded by a thread of their own (their lines go to the log file
            # after the fact); the project's next build waits for them before it writes the workspace.
            key = (v.user_id, v.project_id)
            late = (lambda: self.pending_checks.add(key, lambda: self._record_late(version_id, blog.path))) \
                if self.pending_checks.running(version_id) else None
            golive.after_live(rt, v, dist=dist, inline=True, first=late)

    def _disk_full_note(self, v: ProjectVersion, message: str) -> str:
        """On a full data disk: delete the failed build's output (never used), so the failure can still be written
        to state.db, and say in the message that the disk was full."""
        try:
            free = shutil.disk_usage(self.rt.data_dir).free
            if free >= LOW_DISK_BYTES:
                return message
            dirs = isolation.project_dirs(self.rt.data_dir, v.user_id, v.project_id)
            _, candidates = frameworks.detect(dirs.work)
            removed = reclaim.free_after_failure(self.rt.data_dir, dirs, set(candidates) - frameworks.SOURCE_DIRS,
                                                 [self.rt.layout.tmp / f"home-{v.version_id}"], LOW_DISK_BYTES)
        except (OSError, isolation.UnsafeLayout):
            return message
        return f"{message} (the data dir's disk is full: {free // 1024} KiB free; removed the build's " \
               f"{', '.join(removed)})"

    def _build(self, v: ProjectVersion, blog: BuildLog, times: StepTimes) -> Built:
        rt = self.rt
        self._refuse_unconfined()
        self._project_dirs(v)  # before anything touches the project's paths: a planted link fails the build here
        repo = rt.repo(v.user_id, v.project_id)
        base_files: dict[str, str] | None = None
        if v.parent_version_id:
            base_files = sources.read_base(repo, v.parent_version_id, blog.step, self.cfg.generator.max_file_bytes)

        # 1. generate (a rollback rebuilds its target's recorded sources and lockfile instead)
        if v.kind == "rollback":
            if base_files is None:
                raise BuildFailed("generation_failed", "rollback target has no source snapshot")
            return self._build_files(v, blog, times, dict(base_files))
        blog.step(f"generating with {rt.generator.name}")
        t_gen = time.monotonic()
        try:
            gen = rt.generator.generate(
                GenerationRequest(prompt=v.prompt, framework=v.framework, base_files=base_files), blog.step)
        except GenerationError as exc:
            raise BuildFailed("generation_failed", exc.message) from exc
        except ContractError as exc:
            raise BuildFailed("invalid_output", str(exc)) from exc
        times.generate_ms = int((time.monotonic() - t_gen) * 1000)
        self._check_lease()  # generation can take minutes
        if gen.raw is not None:
            versions.update(rt.outbox, v.version_id, claude_json=gen.raw)
        try:
            files = apply_contract(base_files or {}, gen.contract)
        except ContractError as exc:
            raise BuildFailed("invalid_output", str(exc)) from exc
        blog.step(f"contract: {len(files)} files ({'delta' if gen.contract.is_delta else 'full'})")
        md = gen.contract.meta.get("metadata")
        hint = md.get("targetPackage") if isinstance(md, dict) else None
        return self._build_files(v, blog, times, dict(files), base_files,
                                 target_hint=hint if isinstance(hint, str) else None)

    def _build_files(self, v: ProjectVersion, blog: BuildLog, times: StepTimes, files: dict[str, str],
                     base_files: dict[str, str] | None = None, target_hint: str | None = None) -> Built:
        rt, cfg = self.rt, self.cfg
        tc = toolchain.for_config(rt.cfg)
        dirs = self._project_dirs(v)
        repo = rt.repo(v.user_id, v.project_id)
        workspace = dirs.work
        requested = v.target_package
        if v.kind == "rollback":
            base_files = files
            target = ProjectVersion.get_or_none(ProjectVersion.version_id == v.rollback_of)
            requested = requested or (target.target_package if target else None)
            recorded = (target.node_version, target.pnpm_version) if target else (None, None)
            if recorded != (None, None) and recorded != (tc.node_version, tc.pnpm_version):
                blog.step(f"WARNING recorded toolchain node {recorded[0]} / pnpm {recorded[1]} differs from this "
                          f"machine's node {tc.node_version} / pnpm {tc.pnpm_version}; the lockfile still pins deps")
        # A pnpm workspace keeps its package globs beside the daemon's policy (monorepo.py); else the daemon's file.
        mono = monorepo.prepare(files, base_files, requested, (target_hint, monorepo.inherited_target(v)),
                                cfg.build.allow_build_scripts, blog)
        files = netconfig.drop_foreign(packagejson.sanitize(files, blog, mono.manifests, mono.local_names), blog)
        confined, tc_ro, tmp_bytes = self._views(tc)
        ctx = _Steps(tc=tc, dirs=dirs, confined=confined, readonly=tc_ro, tmp_bytes=tmp_bytes,
                     user=isolation.code_user(cfg), ids=isolation.code_ids(cfg), env={}, packages=mono.dirs)
        self._log_policy(blog, ctx)

        # 2. write the workspace from scratch-of-record: base snapshot + contract, nothing else survives (but for
        # node_modules, and a workspace's packages' node_modules and build output: monorepo.output_keep)
        self.pending_checks.wait((v.user_id, v.project_id), blog.step)
        kept = monorepo.output_keep(mono, files) if mono.is_workspace else []
        materialize(workspace, files, keep=("node_modules", *kept))
        safepath.remove_tree(dirs.cache, ["home"])  # HOME starts empty; the xdg cache stays (and counts)
        home = safepath.ensure_dir(dirs.cache, ["home"])
        ctx.env = self._env(tc, home, dirs.xdg_cache)
        ctx.env["INIT_CWD"] = str(workspace)
        audit_dir = rt.data_dir / "tmp" / f"audit-{v.version_id}"
        job: audit.AuditJob | None = None
        try:
            # 3. install (skipped when the dependency inputs are unchanged and node_modules is intact)
            fingerprint = _deps_fingerprint(files, tc.pnpm_version, mono.manifests)
            marker = _install_marker(workspace) if base_files is not None else None
            if marker is not None and marker.get("fingerprint") == fingerprint:
                times.install_skipped = True
                nm_bytes = int(marker.get("bytes") or 0)
                blog.step(f"install skipped: {'every package.json' if mono.is_workspace else 'package.json'} and "
                          "lockfile unchanged, node_modules intact")
                self._give_code_parts(ctx)
            else:
                nm_bytes = self._install(v, ctx, files, blog, times)

            # audit (beside the snapshot and the build, on a copy of the lockfile: it needs the network, the build
            # must not have it), started as soon as the lockfile is known
            if cfg.build.audit != "off":
                job = self._start_audit(v, ctx, files, audit_dir)

            # 4. snapshot sources + lockfile (the version's commit, parent = its base)
            _, out_candidates = frameworks.detect(workspace)
            excluded = {c.split("/")[0] for c in out_candidates} - frameworks.SOURCE_DIRS
            if mono.target is not None:
                out_candidates = monorepo.target_outputs(workspace, mono.target)
                excluded = {k for k in kept if not k.endswith("/node_modules")}
            # (the file set the contract wrote, never a walk of what install scripts left in the workspace)
            sources.snapshot(repo, files, v, tuple(sorted(excluded)), blog.step)

            # 5. build (and the checks: beside the bundle when the script's type check can be split off)
            # Stale output goes; the project's own sources (frameworks.SOURCE_DIRS) stay for the bundler.
            for rel in out_candidates:
                if rel not in frameworks.SOURCE_DIRS:
                    safepath.remove_tree(workspace, rel.split("/"))
            t0 = time.monotonic()
            view = isolation.code_view(rt.data_dir, rt.layout.store_dir, dirs, readonly=ctx.readonly,
                                       tmp_bytes=ctx.tmp_bytes, packages=ctx.packages) if confined else None
            plan = checks.plan(workspace, cfg.build.checks, out_candidates)
            build_argv, build_env, shown, prints = toolchain.build_argv(tc), ctx.env, None, dict[str, str]()
            if not (plan.typecheck or plan.lint):
                record = checks.skipped_record(plan)
                blog.step("checks: none run, the build script runs as written (" + "; ".join(
                    f"{k} skipped: {c['detail']}" for k, c in record.items()) + ")")
                versions.update(rt.outbox, v.version_id, checks=record)
            elif mono.is_workspace:  # the workspace's build goes through `pnpm --filter`: nothing to split
                blog.step("checks run after the workspace's build")
            else:
                blog.step(plan.split_note or "checks run after the build script")
                if plan.bundle is not None:  # the type check runs beside the rest of the chain
                    self.pending_checks.begin(v.version_id, self._start_checks(v.version_id, ctx, plan, nm_bytes,
                                                                               out_candidates))
                    build_argv, build_env = checks.bundle_argv(plan.bundle), checks.bundle_env(ctx.env, workspace)
                    shown = f"build (type check split off): {plan.bundle}"
            if mono.is_workspace:
                build_argv, prints = monorepo.plan_build(tc, mono, files, workspace, blog)
            res = self._run("build", build_argv, workspace, build_env, blog,
                            network=cfg.sandbox.build_network, view=view, user=ctx.user,
                            disk_roots=_code_roots(dirs), disk_base=nm_bytes, output_root=workspace, shown=shown,
                            meter=v.version_id)
            times.build_ms = int((time.monotonic() - t0) * 1000)
            if mono.is_workspace and res.reason == "ok":
                monorepo.mark_built(workspace, mono, prints)
            if res.reason == "ok" and not self.pending_checks.running(v.version_id) and (plan.typecheck or plan.lint):
                self.pending_checks.begin(v.version_id, self._start_checks(v.version_id, ctx, plan, nm_bytes,
                                                                           out_candidates))
            if job is not None:
                job.wait()
                audit.store(rt.data_dir, cfg, job.lockfile, job.outcome)
                versions.update(rt.outbox, v.version_id, audit_status=audit.status_of(job))
                try:
                    audit.judge(cfg, job, blog.step)
                except audit.AuditFailed as exc:
                    raise BuildFailed("audit_failed", str(exc)) from exc
            if res.reason != "ok":
                raise BuildFailed("build_failed", f"pnpm build exited {res.exit_code}")
        except BuildFailed as exc:
            if exc.reason == "disk_limit":
                self._drop_caches(dirs, blog)
            raise
        finally:
            safepath.remove_tree(dirs.cache, ["home"])
            if job is not None:  # a step that failed before the audit's turn: its thread never outlives the build
                job.wait()
            safepath.remove_tree(rt.data_dir, ["tmp", audit_dir.name])

        # 6. output: a real directory of the workspace (a link there is refused, never followed). It crosses once,
        # into a copy no step can see (checks may still run): the zip, the deployer and the dist commit read that.
        framework, out_rel = frameworks.find_output(workspace, mono.target.path if mono.target else "")
        if out_rel is None:
            raise BuildFailed("no_output", "the build produced none of: " + ", ".join(out_candidates))
        staged = staging.stage(rt, v.version_id, workspace, out_rel, blog.step)
        out_dir, out_size = staging.root(rt, v.version_id) / out_rel, staged.bytes
        blog.step(f"output {out_rel}/ ({out_size} bytes in {staged.files} files, framework {framework or 'unknown'})")

        if cfg.build.checks == "fail":  # every check must pass before the preview goes live
            self._checks_done(v.version_id, blog)

        # 7. artifact zip (local object store; registered, counted and uploaded only once the deploy succeeded)
        key = rt.layout.artifact_key(v.user_id, v.project_id, v.version_id)
        zip_path = rt.layout.local_object(key)
        zip_size = artifacts.zip_output(out_dir, zip_path)

        # 8. deploy
        versions.update(rt.outbox, v.version_id, status="deploying", framework=v.framework or framework,
                        output_size_bytes=out_size, node_version=tc.node_version, pnpm_version=tc.pnpm_version)
        t0 = time.monotonic()
        try:
            dep = rt.deployer.deploy(DeployRequest(out_dir=out_dir, user_id=v.user_id, project_id=v.project_id,
                                                   version_id=v.version_id, message=v.prompt[:200]), blog.step)
        except BaseException as exc:
            zip_path.unlink(missing_ok=True)  # a failed build leaves no artifact behind
            if isinstance(exc, DeployError):
                raise BuildFailed("deploy_failed", exc.message) from exc
            raise
        quotas.note_stored(v.version_id, zip_size)
        artifact_url = artifacts.register_artifact(rt, v, key, zip_path)
        times.deploy_ms = int((time.monotonic() - t0) * 1000)
        blog.step(f"deployed {dep.deployment_id} at {dep.url} ({dep.state})")
        return Built(fields={
            "framework": v.framework or framework,
            "preview_url": dep.url,
            "cf_deployment_id": dep.deployment_id if rt.deployer.records_deployment_id else None,
            "deploy_state": dep.state,
            "install_duration_ms": times.install_ms or None,
            "install_skipped": times.install_skipped,
            "deploy_duration_ms": times.deploy_ms,
            "target_package": mono.target.path if mono.target else None,
            "artifact_url": artifact_url,
        }, dist=(staging.root(rt, v.version_id), out_rel))

    # -- isolation (daemon/project/isolation.py holds the policy; these apply it to one build) ----------------
    def _refuse_unconfined(self) -> None:
        conf = isolation.confinement(self.cfg)
        if not conf.allowed:
            raise BuildFailed("sandbox_unavailable", f"builds are refused without the isolation layer: {conf.why}. "
                                                     f"To fix: {conf.fix}")

    def _project_dirs(self, v: ProjectVersion) -> isolation.ProjectDirs:
        try:
            return isolation.project_dirs(self.rt.data_dir, v.user_id, v.project_id)
        except isolation.UnsafeLayout as exc:
            raise BuildFailed("build_failed", str(exc)) from None

    def _log_policy(self, blog: BuildLog, ctx: _Steps) -> None:
        who = ctx.user or f"the daemon's uid {os.geteuid()}"
        if ctx.confined:
            blog.step(f"isolation: each step in its own bubblewrap view (host read-only; this project's workspace "
                      f"and cache only, node_modules read-only; other projects, the store and the daemon's files "
                      f"hidden; own pid and network namespaces); generated code runs as {who}")
        else:
            blog.step(f"WARNING {isolation.UNCONFINED_WARNING}")
        allowed = ", ".join(self.cfg.build.allow_build_scripts) or "none"
        blog.step("install policy: `pnpm install --ignore-scripts --ignore-pnpmfile` with the side-effects cache "
                  "and package-manager switching off (the only step with network, and it runs no generated code; "
                  "registry, proxy and TLS pinned on its command line, no package-manager config but the daemon's); "
                  f"then, without network: allow-listed dependency scripts ({allowed}) and the project's own "
                  "preinstall/install/postinstall/prepare; then `pnpm build` without network")

    def _give_code_parts(self, ctx: _Steps) -> None:
        """What generated code may write: the workspace but node_modules, node_modules' cache dirs, its cache."""
        work = ctx.dirs.work
        for nm in [p for p in [work / "node_modules"] if p.is_dir() and not p.is_symlink()] + \
                isolation.package_modules(ctx.dirs, ctx.packages):
            for d in isolation.CODE_CACHE_DIRS:
                safepath.ensure_dir(work, [*nm.relative_to(work).parts, d])
                isolation.give_to_code(nm / d, ctx.ids, skip=())
        isolation.give_to_code(work, ctx.ids)
        isolation.give_to_code(ctx.dirs.cache, ctx.ids, skip=())

    def _drop_caches(self, dirs: isolation.ProjectDirs, blog: BuildLog) -> None:
        """After a disk_limit: empty what the project keeps between builds besides its sources (its cache and
        node_modules' cache dirs), so the flood leaves the disk and the project's next build can start."""
        safepath.remove_tree(dirs.project, ["cache"])
        for d in isolation.CODE_CACHE_DIRS:
            safepath.remove_tree(dirs.work, ["node_modules", d])
        blog.step("disk_limit: the project's caches were emptied")

    def _reclaim_node_modules(self, ctx: _Steps, blog: BuildLog) -> None:
        """Before pnpm writes node_modules again: it must be the daemon's own, as the last install left it."""
        work = ctx.dirs.work
        try:
            st = os.lstat(work / "node_modules")
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            safepath.remove_tree(work, ["node_modules"])
            blog.step("node_modules was not the daemon's (an older layout): removed, installing afresh")
            return
        if ctx.ids is not None:
            parts = [work / "node_modules" / d for d in isolation.CODE_CACHE_DIRS]
            parts += [nm / d for nm in isolation.package_modules(ctx.dirs, ctx.packages)
                      for d in isolation.CODE_CACHE_DIRS]
            parts += scripts.plan(work, self.cfg.build.allow_build_scripts).dependency_dirs
            for p in parts:
                if p.is_dir() and not p.is_symlink():
                    isolation.reclaim(p)
            isolation.take_back(work)
            for rel in ctx.packages:  # pnpm writes each package's node_modules into its directory
                with contextlib.suppress(OSError):
                    isolation.take_back(safepath.check_dir(work, rel.split("/")))

    def _install(self, v: ProjectVersion, ctx: _Steps, files: dict[str, str], blog: BuildLog,
                 times: StepTimes) -> int:
        """`pnpm install` with every script off (the daemon's uid, network on, the store writable), then the
        install-time scripts as the build user without network. Returns node_modules' size for the disk cap."""
        rt, cfg, tc, work = self.rt, self.cfg, ctx.tc, ctx.dirs.work
        self._reclaim_node_modules(ctx, blog)
        t0 = time.monotonic()
        safepath.remove_tree(rt.data_dir, ["tmp", f"install-{v.version_id}"])  # HOME holds nothing but the daemon's
        home = safepath.ensure_dir(rt.data_dir, ["tmp", f"install-{v.version_id}"])
        try:
            netconfig.before_install(work, files, ctx.manifests, cfg.build.registry, reclaim=ctx.ids is not None,
                                     say=blog.step)
            view = isolation.install_view(rt.data_dir, rt.layout.store_dir, ctx.dirs, home, readonly=ctx.readonly,
                                          tmp_bytes=ctx.tmp_bytes) if ctx.confined else None
            cache = safepath.ensure_dir(rt.data_dir, ["cache"])
            env = self._env(tc, home, cache, store=rt.layout.store_dir)
            argv = toolchain.install_argv(tc, rt.layout.store_dir, cfg.build.registry, cache / "pnpm",
                                          (".", *ctx.packages))
            res = self._run("install", argv, work,
                            env, blog, network=True, view=view, disk_roots=[(work, ())], output_root=work,
                            meter=v.version_id)
        finally:
            safepath.remove_tree(rt.data_dir, ["tmp", home.name])
        if res.reason != "ok":
            raise BuildFailed("install_failed", f"pnpm install exited {res.exit_code}")
        nm_bytes = max(0, res.disk_bytes - disk_usage(work, ("/node_modules",)))
        try:
            files["pnpm-lock.yaml"] = safepath.read_regular(work, ["pnpm-lock.yaml"], MAX_LOCKFILE).decode(
                "utf-8", "replace")
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise BuildFailed("install_failed", f"pnpm-lock.yaml unusable: {exc}") from None
        self._give_code_parts(ctx)

        plan = scripts.plan(work, cfg.build.allow_build_scripts, (".", *ctx.packages))
        for note in plan.notes:
            blog.step(note)
        if plan.scripts:
            for d in plan.dependency_dirs:
                if n := scripts.unlink_shared(d):
                    blog.step(f"{d.relative_to(work)}: {n} files shared with the store copied before its scripts")
                isolation.give_to_code(d, ctx.ids, skip=())
            names = ", ".join(f"{s.package} {s.event}" for s in plan.scripts)
            try:
                view = isolation.code_view(rt.data_dir, rt.layout.store_dir, ctx.dirs, extra_rw=plan.dependency_dirs,
                                           readonly=ctx.readonly, tmp_bytes=ctx.tmp_bytes,
                                           packages=ctx.packages) if ctx.confined else None
                res = self._run("install scripts", scripts.argv(plan), work, ctx.env, blog, network=False, view=view,
                                user=ctx.user, disk_roots=_code_roots(ctx.dirs, plan.dependency_dirs),
                                disk_base=nm_bytes, output_root=work, shown=f"install-time scripts: {names}",
                                meter=v.version_id)
            finally:
                if ctx.ids is not None:
                    for d in plan.dependency_dirs:
                        isolation.reclaim(d)
            if res.reason != "ok":
                raise BuildFailed("install_failed", f"an install-time script failed (exit {res.exit_code}); "
                                                    "see the log")
        else:
            blog.step("install-time scripts: none")
        if (work / "node_modules").is_dir():
            # Fingerprint what was installed (package.json plus the lockfile pnpm just wrote).
            marker = {"fingerprint": _deps_fingerprint(files, tc.pnpm_version, ctx.manifests), "bytes": nm_bytes}
            safepath.write_atomic(work, ["node_modules", INSTALL_MARKER], json.dumps(marker).encode())
        times.install_ms = int((time.monotonic() - t0) * 1000)
        return nm_bytes

    def _start_checks(self, version_id: str, ctx: _Steps, plan: checks.Plan, nm_bytes: int,
                      outputs: Sequence[str]) -> checks.Session:
        """The checks in their no-network view (sources read-only, the output dirs absent: isolation.checks_view)
        with the build's limits, in a thread beside the build."""
        rt, work = self.rt, ctx.dirs.work
        state = checks.state_dir(ctx.dirs.cache)
        safepath.remove_tree(state, ["home"])  # HOME starts empty; the incremental state beside it stays
        home, xdg = safepath.ensure_dir(state, ["home"]), safepath.ensure_dir(state, ["xdg"])
        isolation.give_to_code(state, ctx.ids, skip=())
        env = self._env(ctx.tc, home, xdg)
        outs = [rel for rel in outputs if rel not in frameworks.SOURCE_DIRS]
        view = isolation.checks_view(rt.data_dir, rt.layout.store_dir, ctx.dirs, state, outs, readonly=ctx.readonly,
                                     tmp_bytes=ctx.tmp_bytes, packages=ctx.packages) if ctx.confined else None
        # Under `record` the preview waits only for the bundle: the checks take the CPU the bundle leaves idle.
        # Under `fail` both gate the preview, so neither yields.
        nice = CHECKS_NICE if self.cfg.build.checks == "record" else 0

        def run_code(argv: list[str], on_line: Callable[[str], None]) -> sandbox.Result:
            res = sandbox.run(argv, cwd=work, env=env, limits=self._limits(), on_line=on_line, network=False,
                              output_root=None, layer=rt.sandbox_layer, user=ctx.user, cancel=self.cancel,
                              view=view, disk_roots=_code_roots(ctx.dirs), disk_base=nm_bytes, nice=nice)
            # Metered while the build's meter is open; checks recorded after going live are not (it is closed).
            # The checks' own thread: its connection closes with the write.
            with database.connection_context():
                quotas.add_cpu(version_id, res.cpu_seconds)
            return res

        return checks.Session(plan, run_code, state, work).start()

    def _checks_done(self, version_id: str, blog: BuildLog, *, judge: bool = True) -> None:
        """Wait for this build's checks, record them on the version, log them; under `fail` BuildFailed when one
        did not pass. Runs once per build (later calls do nothing)."""
        session = self.pending_checks.take(version_id)
        if session is None:
            return
        record = session.wait()
        for line in checks.summary_lines(record):
            blog.step(line)
        v = versions.update(self.rt.outbox, version_id, checks=record, add_timings={"checks": session.elapsed_ms})
        self.rt.events.publish(ChecksRecorded(v))
        if judge:
            checks.judge(self.cfg.build.checks, record)

    def _record_late(self, version_id: str, log_path: Path) -> None:
        """Checks that outlived their build (`record`): recorded when they end, their lines appended to the log."""
        late = BuildLog(log_path, redact=self.cfg.secrets.values(), cap_bytes=self.cfg.limits.log_mb * 2**20)
        try:
            with database.connection_context():  # a thread of its own: its connection closes with it
                self._checks_done(version_id, late, judge=False)
        except Exception:
            log.exception("recording the checks of %s failed", version_id)
        finally:
            late.close()

    def _start_audit(self, v: ProjectVersion, ctx: _Steps, files: dict[str, str], scratch: Path) -> audit.AuditJob:
        rt = self.rt
        safepath.remove_tree(rt.data_dir, ["tmp", scratch.name])  # holds nothing but the daemon's copies
        safepath.ensure_dir(rt.data_dir, ["tmp", scratch.name, "home"])
        env = self._env(ctx.tc, scratch / "home", scratch / "home" / ".cache")
        argv = toolchain.audit_argv(ctx.tc, self.cfg.build.audit_registry, scratch / "home" / ".cache" / "pnpm")
        view = isolation.scratch_view(rt.data_dir, rt.layout.store_dir, scratch, readonly=ctx.readonly,
                                      tmp_bytes=ctx.tmp_bytes) if ctx.confined else None
        lines: list[str] = []

        def run_step(cwd: Path) -> sandbox.Result:
            # Not niced: on a loaded machine a niced audit starved and then held the version back at its end; it
            # mostly waits on the network, so it takes little CPU from `pnpm build` anyway.
            netconfig.purge(cwd, {}, cache_dirs=(), reclaim=False)  # a networked step: the daemon's config only
            res = sandbox.run(argv, cwd=cwd, env=env,
                              limits=self._limits(), on_line=lines.append, network=True, output_root=None,
                              layer=rt.sandbox_layer, cancel=self.cancel, view=view, disk_roots=[(scratch, ())])
            quotas.add_cpu(v.version_id, res.cpu_seconds)
            return res

        return audit.start(self.cfg, files.get("pnpm-lock.yaml", ""), files.get("package.json", ""), run_step,
                           scratch, lines, rt.data_dir)

    def _finish(self, v: ProjectVersion, fields: dict[str, Any]) -> ProjectVersion:
        state = fields.pop("deploy_state")
        if (lost := self.rt.fleet.lost_lease(v.user_id, v.project_id)) is not None:
            raise BuildFailed("interrupted", lost)  # another droplet writes the project now: never go live
        if state == "deployed":
            return golive.make_live(self.rt, v.version_id, **fields)
        # Confirmation comes later (webhook or polling); the row stays 'deploying' with its deployment id.
        v = versions.update(self.rt.outbox, v.version_id, **fields)
        deploywatch.watch(self.rt, v)
        return v
