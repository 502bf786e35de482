"""The build pipeline: generate, write, install, audit, build, find output, zip, deploy, record."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sandbox
from daemon.build import artifacts, deploywatch, frameworks, publish, toolchain
from daemon.build.buildlog import BuildLog
from daemon.build.workspace import materialize
from daemon.core import logging_setup, versions
from daemon.core.contract import ContractError, apply_contract
from daemon.core.db import ProjectVersion
from daemon.deployers.base import DeployError, DeployRequest
from daemon.generators import GenerationError, GenerationRequest
from daemon.history import HistoryError
from sandbox.output import file_bytes
from sandbox.ownership import hand_over

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.build")

INSTALL_MARKER = ".previewd-install.json"
LOW_DISK_BYTES = 4 * 2**20  # below this free on the data dir's disk, a failed build is called a full disk
SANDBOX_REASONS = {"cpu_limit", "memory_limit", "output_limit", "timeout", "pids_limit"}


class BuildFailed(Exception):
    """Ends a build as failed with a reason code from DESIGN.md."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class StepTimes:
    install_ms: int = 0
    build_ms: int = 0
    deploy_ms: int = 0
    install_skipped: bool = False


def _deps_fingerprint(files: dict[str, str], pnpm_version: str) -> str:
    h = hashlib.sha256(pnpm_version.encode())
    for name in ("package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml"):
        h.update(name.encode() + b"\0" + files.get(name, "").encode() + b"\0")
    return h.hexdigest()


def _install_intact(workspace: Path, fingerprint: str) -> bool:
    """node_modules matches the dependency inputs when our marker says so and pnpm's own state file exists."""
    marker = workspace / "node_modules" / INSTALL_MARKER
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return data.get("fingerprint") == fingerprint and (workspace / "node_modules" / ".modules.yaml").is_file()


def zip_output(out_dir: Path, dest: Path) -> int:
    """Zip a build output dir (regular files only: no links, no .git*, no pnpm store); returns its size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(out_dir.rglob("*")):
            rel = path.relative_to(out_dir)
            if any(part.startswith(".git") or part in ("node_modules", ".pnpm-store", "pnpm-store")
                   for part in rel.parts):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            zf.write(path, rel.as_posix())
    tmp.replace(dest)
    return dest.stat().st_size


@dataclass
class Built:
    """What a build produced: the row's new fields, and where its output lies (workspace, output dir)."""

    fields: dict[str, Any]
    dist: tuple[Path, str]


class Pipeline:
    """Runs one version's build from queued to deployed or failed."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.cfg = rt.cfg
        # Set at shutdown past the grace period: the running step is killed and the version is `interrupted`.
        self.cancel = threading.Event()

    # -- helpers -----------------------------------------------------------------------------------------
    def _limits(self) -> sandbox.Limits:
        lim = self.cfg.limits
        return sandbox.Limits(cpu_seconds=lim.cpu_seconds, memory_bytes=lim.memory_mb * 2**20,
                              output_bytes=lim.output_mb * 2**20, wall_seconds=lim.wall_seconds, pids=lim.pids,
                              log_bytes=lim.log_mb * 2**20)

    def _env(self, tc: toolchain.Toolchain, home: Path) -> dict[str, str]:
        extra = {
            "PATH": tc.path_env,
            "NODE_OPTIONS": f"--max-old-space-size={self.cfg.build.node_max_old_space_mb}",
            "npm_config_store_dir": str(self.rt.store_dir),
            "PNPM_CONFIG_STORE_DIR": str(self.rt.store_dir),
            "npm_config_update_notifier": "false",
            "PNPM_HOME": str(home / ".pnpm-home"),
            # pnpm keeps registry metadata here; shared so a warm droplet resolves without asking the registry.
            "XDG_CACHE_HOME": str(self.rt.data_dir / "cache"),
        }
        return sandbox.safe_env(extra, home=home)

    def _run(self, step: str, argv: list[str], workspace: Path, env: dict[str, str], blog: BuildLog,
             network: bool) -> sandbox.Result:
        blog.step(f"$ {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))}")
        res = sandbox.run(argv, cwd=workspace, env=env, limits=self._limits(), on_line=blog.line,
                          network=network, output_root=workspace, layer=self.rt.sandbox_layer,
                          user=self.rt.build_user, cancel=self.cancel, view=self.rt.build_view())
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
            self._run_version(v, version_id)

    def _run_version(self, v: ProjectVersion, version_id: str) -> None:
        rt = self.rt
        blog = BuildLog(rt.layout.log_path(version_id), redact=self.cfg.secrets.values(),
                        cap_bytes=self.cfg.limits.log_mb * 2**20)
        rt.live_logs[version_id] = blog
        started = time.monotonic()
        times = StepTimes()
        dist: tuple[Path, str] | None = None
        try:
            v = versions.update(rt.outbox, version_id, status="building")
            blog.step(f"build {version_id} for {v.user_id}/{v.project_id} ({v.kind})")
            built = self._build(v, blog, times)
            total_ms = int((time.monotonic() - started) * 1000)
            v = self._finish(v, {"build_duration_ms": total_ms, **built.fields})
            dist = built.dist
        except BuildFailed as exc:
            message = self._disk_full_note(v, exc.message)
            blog.step(f"failed: {exc.reason}: {message}")
            v = versions.update(rt.outbox, version_id, status="failed", failure_reason=exc.reason,
                                failure_message=message[:2000],
                                build_duration_ms=int((time.monotonic() - started) * 1000),
                                install_duration_ms=times.install_ms or None, install_skipped=times.install_skipped)
        except Exception as exc:  # the worker must survive anything; the version must not stay 'building'
            log.exception("build %s crashed", version_id)
            message = self._disk_full_note(v, f"internal error: {type(exc).__name__}: {exc}")
            blog.step(f"failed: {message}")
            v = versions.update(rt.outbox, version_id, status="failed", failure_reason="build_failed",
                                failure_message=message[:2000])
        finally:
            rt.live_logs.pop(version_id, None)
            blog.close()
            rt.build_done(v)
            rt.notify(version_id)
            rt.sync_nudge()
        if v.status in ("deployed", "deploying"):
            # In the worker, after the answer: the browser never competes with a build for the machine.
            publish.after_live(rt, v, dist=dist, inline=True)

    def _disk_full_note(self, v: ProjectVersion, message: str) -> str:
        """On a full data disk: delete the failed build's output (never used), so the failure can still be written
        to state.db, and say in the message that the disk was full."""
        try:
            free = shutil.disk_usage(self.rt.data_dir).free
            if free >= LOW_DISK_BYTES:
                return message
            workspace = self.rt.layout.project_dir(v.user_id, v.project_id) / "work"
            _, candidates = frameworks.detect(workspace)
            for rel in set(candidates) - {"public", "src"}:
                shutil.rmtree(workspace / rel, ignore_errors=True)
            shutil.rmtree(self.rt.layout.tmp / f"home-{v.version_id}", ignore_errors=True)
        except OSError:
            return message
        return f"{message} (the data dir's disk is full: {free // 1024} KiB free)"

    def _build(self, v: ProjectVersion, blog: BuildLog, times: StepTimes) -> Built:
        rt = self.rt
        repo = rt.repo(v.user_id, v.project_id)
        base_files: dict[str, str] | None = None
        if v.parent_version_id:
            try:
                raw = repo.files(v.parent_version_id)
            except HistoryError as exc:
                raise BuildFailed("generation_failed", f"base version {v.parent_version_id} unreadable: {exc}") from exc
            base_files = {p: b.decode("utf-8", "replace") for p, b in raw.items()}

        # 1. generate (a rollback rebuilds its target's recorded sources and lockfile instead)
        if v.kind == "rollback":
            if base_files is None:
                raise BuildFailed("generation_failed", "rollback target has no source snapshot")
            return self._build_files(v, blog, times, dict(base_files))
        blog.step(f"generating with {rt.generator.name}")
        try:
            gen = rt.generator.generate(
                GenerationRequest(prompt=v.prompt, framework=v.framework, base_files=base_files), blog.step)
        except GenerationError as exc:
            raise BuildFailed("generation_failed", exc.message) from exc
        except ContractError as exc:
            raise BuildFailed("invalid_output", str(exc)) from exc
        if gen.raw is not None:
            versions.update(rt.outbox, v.version_id, claude_json=gen.raw)
        try:
            files = apply_contract(base_files or {}, gen.contract)
        except ContractError as exc:
            raise BuildFailed("invalid_output", str(exc)) from exc
        blog.step(f"contract: {len(files)} files ({'delta' if gen.contract.is_delta else 'full'})")
        return self._build_files(v, blog, times, dict(files), base_files)

    def _build_files(self, v: ProjectVersion, blog: BuildLog, times: StepTimes, files: dict[str, str],
                     base_files: dict[str, str] | None = None) -> Built:
        rt, cfg = self.rt, self.cfg
        tc = rt.toolchain()
        repo = rt.repo(v.user_id, v.project_id)
        workspace = rt.workspace(v.user_id, v.project_id)
        if v.kind == "rollback":
            base_files = files
            target = ProjectVersion.get_or_none(ProjectVersion.version_id == v.rollback_of)
            recorded = (target.node_version, target.pnpm_version) if target else (None, None)
            if recorded != (None, None) and recorded != (tc.node_version, tc.pnpm_version):
                blog.step(f"WARNING recorded toolchain node {recorded[0]} / pnpm {recorded[1]} differs from this "
                          f"machine's node {tc.node_version} / pnpm {tc.pnpm_version}; the lockfile still pins deps")
        files["pnpm-workspace.yaml"] = toolchain.workspace_yaml(cfg.build.allow_build_scripts)
        files = _sanitize_package_json(files, blog)

        # 2. write the workspace from scratch-of-record: base snapshot + contract, nothing else survives
        materialize(workspace, files, keep=("node_modules",))
        home = rt.build_home(v.version_id)
        if rt.build_ids is not None:
            hand_over(workspace, rt.build_ids)
            hand_over(home, rt.build_ids)
        env = self._env(tc, home)
        try:
            # 3. install (skipped when the dependency inputs are unchanged and node_modules is intact)
            fingerprint = _deps_fingerprint(files, tc.pnpm_version)
            if base_files is not None and _install_intact(workspace, fingerprint):
                times.install_skipped = True
                blog.step("install skipped: package.json and lockfile unchanged, node_modules intact")
            else:
                t0 = time.monotonic()
                res = self._run("install", toolchain.install_argv(tc, rt.store_dir, cfg.build.registry),
                                workspace, env, blog, network=True)
                times.install_ms = int((time.monotonic() - t0) * 1000)
                if res.reason != "ok":
                    raise BuildFailed("install_failed", f"pnpm install exited {res.exit_code}")
            lock = workspace / "pnpm-lock.yaml"
            if lock.is_file():
                files["pnpm-lock.yaml"] = lock.read_text(encoding="utf-8", errors="replace")
            if not times.install_skipped and (workspace / "node_modules").is_dir():
                # Fingerprint what was installed (package.json plus the lockfile pnpm just wrote).
                marker = {"fingerprint": _deps_fingerprint(files, tc.pnpm_version)}
                (workspace / "node_modules" / INSTALL_MARKER).write_text(json.dumps(marker))

            # 4. snapshot sources + lockfile (the version's commit, parent = its base)
            _, out_candidates = frameworks.detect(workspace)
            try:
                sha = repo.snapshot(workspace, v.version_id, v.parent_version_id, v.prompt[:500],
                                    exclude_dirs=tuple(sorted({c.split("/")[0] for c in out_candidates}
                                                              - {"public", "src"})))
                blog.step(f"snapshot {sha[:12]}")
            except HistoryError as exc:
                raise BuildFailed("build_failed", f"snapshot failed: {exc}") from exc

            # 5. audit (beside the build: it needs the network, the build does not) and build
            audit_box: dict[str, Any] = {}
            audit_thread = None
            if cfg.build.audit != "off":
                cached = self._cached_audit(files.get("pnpm-lock.yaml", ""))
                if cached is not None:
                    audit_box["outcome"], audit_box["cached"] = cached
                else:
                    audit_thread = threading.Thread(target=self._audit, args=(tc, workspace, env, audit_box),
                                                    daemon=True)
                    audit_thread.start()
            for rel in out_candidates:
                shutil.rmtree(workspace / rel, ignore_errors=True)
            t0 = time.monotonic()
            res = self._run("build", toolchain.build_argv(tc), workspace, env, blog,
                            network=cfg.sandbox.build_network)
            times.build_ms = int((time.monotonic() - t0) * 1000)
            if audit_thread is not None:
                audit_thread.join()
                self._store_audit(files.get("pnpm-lock.yaml", ""), audit_box)
            if "outcome" in audit_box:
                self._judge_audit(v, audit_box, blog)
            if res.reason != "ok":
                raise BuildFailed("build_failed", f"pnpm build exited {res.exit_code}")
        finally:
            shutil.rmtree(home, ignore_errors=True)

        # 6. output
        framework, out_rel = frameworks.find_output(workspace)
        if out_rel is None:
            raise BuildFailed("no_output", "the build produced none of: " + ", ".join(out_candidates))
        out_dir = workspace / out_rel
        out_size = file_bytes(out_dir)
        if out_size > cfg.limits.output_mb * 2**20:
            raise BuildFailed("output_limit", f"output {out_size} bytes over {cfg.limits.output_mb} MiB")
        blog.step(f"output {out_rel}/ ({out_size} bytes, framework {framework or 'unknown'})")

        # 7. artifact zip (local object store, replicated by the outbox)
        key = rt.layout.artifact_key(v.user_id, v.project_id, v.version_id)
        zip_path = rt.layout.local_object(key)
        zip_output(out_dir, zip_path)
        artifact_url = artifacts.register_artifact(rt, v, key, zip_path)

        # 8. deploy
        versions.update(rt.outbox, v.version_id, status="deploying", framework=v.framework or framework,
                        output_size_bytes=out_size, artifact_url=artifact_url,
                        node_version=tc.node_version, pnpm_version=tc.pnpm_version)
        t0 = time.monotonic()
        try:
            dep = rt.deployer.deploy(DeployRequest(out_dir=out_dir, user_id=v.user_id, project_id=v.project_id,
                                                   version_id=v.version_id, message=v.prompt[:200]), blog.step)
        except DeployError as exc:
            raise BuildFailed("deploy_failed", exc.message) from exc
        times.deploy_ms = int((time.monotonic() - t0) * 1000)
        blog.step(f"deployed {dep.deployment_id} at {dep.url} ({dep.state})")
        return Built(fields={
            "framework": v.framework or framework,
            "preview_url": dep.url,
            "cf_deployment_id": dep.deployment_id if rt.deployer.name != "local" else None,
            "deploy_state": dep.state,
            "install_duration_ms": times.install_ms or None,
            "install_skipped": times.install_skipped,
            "deploy_duration_ms": times.deploy_ms,
        }, dist=(workspace, out_rel))

    def _audit(self, tc: toolchain.Toolchain, workspace: Path, env: dict[str, str], box: dict[str, Any]) -> None:
        lines: list[str] = []
        try:
            res = sandbox.run(toolchain.audit_argv(tc, self.cfg.build.audit_registry), cwd=workspace, env=env,
                              limits=self._limits(), on_line=lines.append, network=True,
                              output_root=None, layer=self.rt.sandbox_layer, user=self.rt.build_user,
                              cancel=self.cancel, view=self.rt.build_view())
            box["outcome"] = toolchain.parse_audit(res.exit_code if res.reason in ("ok", "exit_nonzero") else None,
                                                   "\n".join(lines))
        except Exception as exc:  # an audit that cannot run is "unavailable", never a pass
            box["outcome"] = toolchain.AuditOutcome("unavailable", 0, f"{type(exc).__name__}: {exc}")

    def _audit_cache_path(self, lockfile: str) -> Path:
        key = hashlib.sha256((self.cfg.build.audit_registry + "\0" + lockfile).encode()).hexdigest()
        return self.rt.data_dir / "cache" / "audit" / f"{key}.json"

    def _cached_audit(self, lockfile: str) -> tuple[toolchain.AuditOutcome, float] | None:
        """A recent audit of the very same lockfile: advisories do not change by the minute, so reuse it.

        An "unavailable" result is kept for a short time only, so the advisory database is asked again soon.
        """
        ttl_min = self.cfg.build.audit_cache_minutes
        if not lockfile or ttl_min <= 0:
            return None
        try:
            data = json.loads(self._audit_cache_path(lockfile).read_text())
            outcome = toolchain.AuditOutcome(data["status"], int(data["critical"]), str(data["detail"]))
            age = time.time() - float(data["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        ttl_s = ttl_min * 60 if outcome.status != "unavailable" else min(ttl_min * 60, 600)
        return (outcome, age) if 0 <= age < ttl_s else None

    def _store_audit(self, lockfile: str, box: dict[str, Any]) -> None:
        outcome = box.get("outcome")
        if not lockfile or outcome is None or self.cfg.build.audit_cache_minutes <= 0:
            return
        path = self._audit_cache_path(lockfile)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"status": outcome.status, "critical": outcome.critical, "detail": outcome.detail,
                                   "at": time.time()}))
        tmp.replace(path)

    def _judge_audit(self, v: ProjectVersion, box: dict[str, Any], blog: BuildLog) -> None:
        outcome: toolchain.AuditOutcome = box.get("outcome") or toolchain.AuditOutcome("unavailable", 0, "no result")
        if "cached" in box:
            blog.step(f"audit: same lockfile audited {box['cached'] / 60:.0f} min ago, reusing its result")
        versions.update(self.rt.outbox, v.version_id, audit_status=outcome.status)
        if outcome.status == "unavailable":
            blog.step(f"WARNING audit unavailable (no advisory database reached): {outcome.detail}")
        elif outcome.status == "critical":
            if self.cfg.build.audit == "fail":
                raise BuildFailed("audit_failed", f"pnpm audit: {outcome.detail}")
            blog.step(f"WARNING audit: {outcome.detail}")
        else:
            blog.step("audit: no critical advisories")

    def _finish(self, v: ProjectVersion, fields: dict[str, Any]) -> ProjectVersion:
        state = fields.pop("deploy_state")
        if state == "deployed":
            return publish.make_live(self.rt, v.version_id, **fields)
        # Confirmation comes later (webhook or polling); the row stays 'deploying' with its deployment id.
        v = versions.update(self.rt.outbox, v.version_id, **fields)
        deploywatch.watch(self.rt, v)
        return v


def _sanitize_package_json(files: dict[str, str], blog: BuildLog) -> dict[str, str]:
    """Drop a generated package.json's `pnpm` settings: build-script policy belongs to the daemon."""
    text = files.get("package.json")
    if text is None:
        return files
    try:
        pkg = json.loads(text)
    except ValueError:
        return files  # pnpm install reports a broken package.json better than we can
    if isinstance(pkg, dict) and "pnpm" in pkg:
        pkg.pop("pnpm")
        blog.step("package.json: removed its `pnpm` settings (install policy is the daemon's)")
        files = {**files, "package.json": json.dumps(pkg, indent=2) + "\n"}
    return files


OnLine = Callable[[str], None]
