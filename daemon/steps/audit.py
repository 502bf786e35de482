"""`pnpm audit` of a build's lockfile: run on a daemon-made copy (never in the workspace), cached out of build reach,
and judged by the configured policy (daemon/steps/auditing.py runs it in a build)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sandbox
from daemon.core.config import Config
from daemon.project import toolchain
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


__all__ = ["AuditFailed", "AuditJob", "cached", "judge", "start", "status_of", "store"]
