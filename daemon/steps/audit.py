"""`pnpm audit` of a build's lockfile: run on a daemon-made copy (never in the workspace), cached out of build reach,
and judged by the configured policy. The StartAudit step starts it beside the build; `settle` gives its verdict."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sandbox
from daemon.core import quotas
from daemon.core.config import Config
from daemon.project import isolation, netconfig, toolchain
from daemon.project.failures import BuildFailed
from daemon.steps import sandboxed
from daemon.steps.context import BuildContext
from sandbox import safepath

# Below the data dir, never mounted into any build step's view (the old place, cache/audit, was writable by builds).
CACHE_DIR = "audit-cache"
UNAVAILABLE_TTL_S = 600
MAX_ENTRY_BYTES = 64 * 1024


class AuditFailed(Exception):
    """The audit found a critical advisory and the policy is `fail`."""


@dataclass
class AuditJob:
    """One audit running beside the build; `outcome` is set when it is done (or taken from the cache)."""

    lockfile: str
    outcome: toolchain.AuditOutcome | None = None
    cached_age_s: float | None = None
    thread: threading.Thread | None = None

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _key(cfg: Config, lockfile: str) -> str:
    return hashlib.sha256((cfg.build.audit_registry + "\0" + lockfile).encode()).hexdigest() + ".json"


def cached(data_dir: Path, cfg: Config, lockfile: str) -> tuple[toolchain.AuditOutcome, float] | None:
    """A recent audit of the very same lockfile: advisories do not change by the minute, so reuse it.

    An "unavailable" result is kept for a short time only, so the advisory database is asked again soon.
    """
    ttl_min = cfg.build.audit_cache_minutes
    if not lockfile or ttl_min <= 0:
        return None
    try:
        data = json.loads(safepath.read_regular(data_dir, [CACHE_DIR, _key(cfg, lockfile)], MAX_ENTRY_BYTES))
        outcome = toolchain.AuditOutcome(data["status"], int(data["critical"]), str(data["detail"]))
        age = time.time() - float(data["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ttl_s = ttl_min * 60 if outcome.status != "unavailable" else min(ttl_min * 60, UNAVAILABLE_TTL_S)
    return (outcome, age) if 0 <= age < ttl_s else None


def store(data_dir: Path, cfg: Config, lockfile: str, outcome: toolchain.AuditOutcome | None) -> None:
    """Remember an audit (written without following links, in a directory no build can see)."""
    if not lockfile or outcome is None or cfg.build.audit_cache_minutes <= 0:
        return
    entry = {"status": outcome.status, "critical": outcome.critical, "detail": outcome.detail, "at": time.time()}
    safepath.write_atomic(data_dir, [CACHE_DIR, _key(cfg, lockfile)], json.dumps(entry).encode(), 0o600)


def start(cfg: Config, lockfile: str, package_json: str, run_step: Callable[[Path], sandbox.Result],
          scratch: Path, lines: list[str], data_dir: Path) -> AuditJob:
    """Start the audit beside the build (it needs the network, the build must not have it), or take it from the
    cache. `run_step(cwd)` runs `pnpm audit` in `scratch`, which holds only copies of package.json and the
    lockfile: nothing the build writes in the meantime can change what pnpm reads or where it connects."""
    job = AuditJob(lockfile)
    hit = cached(data_dir, cfg, lockfile)
    if hit is not None:
        job.outcome, job.cached_age_s = hit
        return job

    def work() -> None:
        try:
            (scratch / "package.json").write_text(package_json, encoding="utf-8")
            (scratch / "pnpm-lock.yaml").write_text(lockfile, encoding="utf-8")
            res = run_step(scratch)
            job.outcome = toolchain.parse_audit(res.exit_code if res.reason in ("ok", "exit_nonzero") else None,
                                                "\n".join(lines))
        except Exception as exc:  # an audit that cannot run is "unavailable", never a pass
            job.outcome = toolchain.AuditOutcome("unavailable", 0, f"{type(exc).__name__}: {exc}")

    job.thread = threading.Thread(target=work, name="previewd-audit", daemon=True)
    job.thread.start()
    return job


def judge(cfg: Config, job: AuditJob, step: Callable[[str], None]) -> toolchain.AuditOutcome:
    """Log the outcome; AuditFailed when a critical advisory remains and the policy says fail."""
    outcome = job.outcome or toolchain.AuditOutcome("unavailable", 0, "no result")
    if job.cached_age_s is not None:
        step(f"audit: same lockfile audited {job.cached_age_s / 60:.0f} min ago, reusing its result")
    if outcome.status == "unavailable":
        step(f"WARNING audit unavailable (no advisory database reached): {outcome.detail}")
    elif outcome.status == "critical":
        if cfg.build.audit == "fail":
            raise AuditFailed(f"pnpm audit: {outcome.detail}")
        step(f"WARNING audit: {outcome.detail}")
    else:
        step("audit: no critical advisories")
    return outcome


def status_of(job: AuditJob) -> str:
    """The version row's audit_status."""
    return (job.outcome or toolchain.AuditOutcome("unavailable", 0, "")).status


def start_job(ctx: BuildContext, scratch: Path) -> AuditJob:
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

    return start(cfg, ctx.files.get("pnpm-lock.yaml", ""), ctx.files.get("package.json", ""), run_step,
                 scratch, lines, rt.data_dir)


def settle(ctx: BuildContext) -> None:
    """Wait for the build's audit (if one runs), cache and record its outcome, judge it (BuildFailed
    audit_failed under `fail`)."""
    job = ctx.audit_job
    if job is None:
        return
    cfg = ctx.rt.cfg
    job.wait()
    store(ctx.rt.data_dir, cfg, job.lockfile, job.outcome)
    ctx.record(audit_status=status_of(job))
    try:
        judge(cfg, job, ctx.log.step)
    except AuditFailed as exc:
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


__all__ = ["AuditFailed", "AuditJob", "StartAudit", "cached", "judge", "settle", "start", "start_job", "status_of",
           "store"]
