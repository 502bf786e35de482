"""Nightly cleanup and retention: each step of the seed's policy as one function reporting counts, dry run included.

`Cleanup` holds what the steps use (the config, the layout, the outbox, the KV, the deployer, the object stores,
the sync loop), each given by the composition root; each step reads them from its run's context.

Long because each rule of the seed's retention policy is one step function here, read top to bottom as the policy.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peewee import fn

from daemon.core import quotas, versions
from daemon.core.db import ACTIVE_STATUSES, AliasRedeploy, Project, ProjectVersion, database, utcnow
from daemon.core.errors import Conflict
from daemon.core.ids import valid_id
from daemon.deployers.previewnames import deployment_id_for as local_deployment_id
from daemon.fleet.ledger import LocalLedger, QuotaLedger
from daemon.history import HistoryError, ProjectRepo
from daemon.ops import retention
from daemon.project import toolchain
from daemon.publish import golive, livealias
from daemon.publish.golive import DIST_WINDOW
from sandbox.output import file_bytes

if TYPE_CHECKING:
    from daemon.core.config import Config
    from daemon.core.layout import Layout
    from daemon.deployers.base import Deployer
    from sync.kv.base import KV
    from sync.loop import SyncLoop
    from sync.objects.base import ObjectStore
    from sync.outbox import EnabledOutbox

log = logging.getLogger("previewd.cleanup")

ARTIFACT_KEY_RE = re.compile(r"([A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,64}/snapshots/[0-9A-HJKMNP-TV-Z]{26}\.zip)$")
MAX_ACTIONS = 200  # per step, in the report; counts stay exact
PNPM_PRUNE_TIMEOUT_S = 900
_running = threading.Lock()  # the nightly job and `daemonctl cleanup` never overlap


@dataclass
class StepReport:
    """What one step did (or, in a dry run, would do): counters, a sample of actions, its error if it failed."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def add(self, counter: str, action: str | None = None, n: int = 1) -> None:
        """Bump a counter and remember the action line (the first MAX_ACTIONS of them)."""
        self.counts[counter] = self.counts.get(counter, 0) + n
        if action is not None and len(self.actions) < MAX_ACTIONS:
            self.actions.append(action)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.error is None, "counts": self.counts, "actions": self.actions,
                "error": self.error, "seconds": round(self.seconds, 3)}


@dataclass
class CleanupReport:
    """Every step's report, in order."""

    dry_run: bool
    now: datetime
    steps: list[StepReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.error is None for s in self.steps)

    def step(self, name: str) -> StepReport | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run, "ok": self.ok, "now": self.now.replace(tzinfo=UTC).isoformat(),
                "steps": [s.to_json() for s in self.steps]}


class Cleanup:
    """The nightly cleanup of one daemon, over the collaborators its steps use."""

    def __init__(self, cfg: Config, layout: Layout, outbox: EnabledOutbox, kv: KV, deployer: Deployer, *,
                 local_objects: ObjectStore, remote_objects: ObjectStore | None, sync_loop: SyncLoop,
                 ledger: QuotaLedger | None = None) -> None:
        """`outbox`: the outbox rows are replicated through; `remote_objects`: the bucket, None without one;
        `sync_loop`: pushes a repaired KV pointer out (daemon/publish/golive.py `pointer_moved`); `ledger`: where
        a fleet records deleted alias redeploys (daemon/fleet/ledger.py)."""
        self.cfg = cfg
        self.layout = layout
        self.outbox = outbox
        self.kv = kv
        self.deployer = deployer
        self.local_objects = local_objects
        self.remote_objects = remote_objects
        self.sync_loop = sync_loop
        self.ledger: QuotaLedger = ledger if ledger is not None else LocalLedger()

    def run(self, *, dry_run: bool, now: datetime | None = None) -> CleanupReport:
        """Run every step in order; a failing step is reported and the rest still run. 409 when one is running."""
        if now is None:
            now = utcnow()
        elif now.tzinfo is not None:
            now = now.astimezone(UTC).replace(tzinfo=None)
        if not _running.acquire(blocking=False):
            raise Conflict("a cleanup is already running", code="cleanup_running")
        try:
            report = CleanupReport(dry_run=dry_run, now=now)
            ctx = _Ctx(self, dry_run, now)
            for name, fn in STEPS:
                step = StepReport(name)
                report.steps.append(step)
                t0 = time.monotonic()
                try:
                    fn(ctx, step)
                except Exception as exc:  # one broken step must not cost the others their run
                    step.error = f"{type(exc).__name__}: {exc}"[:500]
                    log.exception("cleanup step %s failed", name)
                step.seconds = time.monotonic() - t0
            log.info("cleanup %s: %s", "dry run" if dry_run else "done",
                     "; ".join(f"{s.name} {s.counts or '-'}" + (f" FAILED {s.error}" if s.error else "")
                               for s in report.steps))
            return report
        finally:
            _running.release()

    def nightly(self) -> None:
        """The scheduled run at [retention] nightly_at (UTC): never takes the scheduler down; tomorrow tries
        again."""
        try:
            self.run(dry_run=False)
        except Exception:
            log.exception("nightly cleanup failed")


@dataclass
class _Ctx:
    cleanup: Cleanup
    dry_run: bool
    now: datetime
    gone: set[str] = field(default_factory=set)  # rows deleted (or, dry, that would be) by an earlier step


# -- shared helpers ----------------------------------------------------------------------------------------

def _projects() -> list[tuple[str, str]]:
    rows: set[tuple[str, str]] = set()
    for q in (ProjectVersion.select(ProjectVersion.user_id, ProjectVersion.project_id).distinct(),
              Project.select(Project.user_id, Project.project_id)):
        rows |= {(str(r.user_id), str(r.project_id)) for r in q}
    return sorted(rows)


def _live_ids() -> set[str]:
    """Every version some project shows now: the recorded live one and what live_version() falls back to."""
    ids = {str(p.live_version_id) for p in Project.select(Project.live_version_id)
           if p.live_version_id}
    for user_id, project_id in _projects():
        v = versions.live_version(user_id, project_id)
        if v is not None:
            ids.add(v.version_id)
    return ids


def _protected(v: ProjectVersion, live: set[str]) -> bool:
    return bool(v.pinned) or v.version_id in live or v.status in ACTIVE_STATUSES


def artifact_key_of(url: str | None) -> str | None:
    """The object key an artifact_url names (file:// or s3:// alike), or None (also for a row written before
    sync.names reserved its user or project id: no store accepts that key, and one such row must not stop a
    step for everybody else)."""
    if not url:
        return None
    m = ARTIFACT_KEY_RE.search(url)
    if m is None:
        return None
    user_id, project_id = m.group(1).split("/", 2)[:2]
    return m.group(1) if valid_id(user_id) and valid_id(project_id) else None


def _in_remote(layout: Layout, url: str) -> bool:
    """Whether an artifact_url names the remote store (anything not under the local store's folder)."""
    return not url.startswith(layout.objects.resolve().as_uri() + "/")


def deployment_id_of(deployer: Deployer, v: ProjectVersion) -> str | None:
    """The deployment a version's preview lives in: Pages records it; the local deployer derives it."""
    if v.cf_deployment_id:
        return str(v.cf_deployment_id)
    if deployer.serves_previews and v.preview_url:
        from daemon.deployers.previewnames import deployment_id_for

        return deployment_id_for(v.project_id, v.version_id)
    return None


def _age(v: ProjectVersion) -> str:
    return v.created_at.strftime("%Y-%m-%d") if v.created_at else "?"


def _purge(ctx: _Ctx, v: ProjectVersion, step: StepReport, why: str) -> None:
    """Hard-delete one version: its deployment, its artifact (unless a kept row still uses it), its log, its row.

    The row goes last, so a failure part-way leaves a row that the next run finds and finishes. The version's
    git tag is kept on purpose: its commit stays reachable from every later version built on it (so deleting
    the tag frees almost nothing), the recovery packs already in object storage name it as a base, and diffs
    and restores of the versions that remain keep working.
    """
    c = ctx.cleanup
    step.add("rows", f"delete {v.user_id}/{v.project_id} {v.version_id} ({_age(v)}, {why})")
    ctx.gone.add(v.version_id)
    dep = deployment_id_of(c.deployer, v)
    key = artifact_key_of(v.artifact_url) or (c.layout.artifact_key(v.user_id, v.project_id, v.version_id)
                                              if valid_id(v.user_id) and valid_id(v.project_id) else None)
    # A rollback row reuses its target's zip; the zip stays while any kept row names it. (substr, not LIKE:
    # ids may hold `_`, a LIKE wildcard.) No key: a reserved id's row, whose zip no store can address.
    shared = key is None or (ProjectVersion.select().where(
        (ProjectVersion.version_id != v.version_id) & (fn.substr(ProjectVersion.artifact_url, -len(key)) == key))
        .exists())
    if dep:
        step.add("deployments")
    if not shared:
        step.add("artifacts")
    if ctx.dry_run:
        return
    if dep:
        c.deployer.delete(dep)
    if key is not None and not shared:
        c.local_objects.delete(key)
        if c.remote_objects is not None:
            c.remote_objects.delete(key)
    c.layout.log_path(v.version_id).unlink(missing_ok=True)
    with database.atomic("IMMEDIATE"):
        ProjectVersion.delete().where(ProjectVersion.version_id == v.version_id).execute()
        c.outbox.add(database.connection(), "replica", v.version_id, {"delete": v.version_id})
        versions.forget(v)


# -- the steps -----------------------------------------------------------------------------------------------

def keep_latest(ctx: _Ctx, step: StepReport) -> None:
    """Delete versions past the newest `keep_versions` of each project (never pinned, live or in flight)."""
    keep = ctx.cleanup.cfg.retention.keep_versions
    live = _live_ids()
    for user_id, project_id in _projects():
        step.add("projects")
        rows = (ProjectVersion.select()
                .where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id))
                .order_by(ProjectVersion.created_at.desc(), ProjectVersion.version_id.desc()).offset(keep))
        for v in rows:
            if _protected(v, live):
                step.add("kept_protected")
                continue
            _purge(ctx, v, step, f"past the newest {keep}")


def archive_artifacts(ctx: _Ctx, step: StepReport) -> None:
    """Move artifact zips older than `archive_after_days` to the archive class, updating artifact_url."""
    c = ctx.cleanup
    cutoff = ctx.now - timedelta(days=c.cfg.retention.archive_after_days)
    rows = (ProjectVersion.select()
            .where(ProjectVersion.artifact_url.is_null(False) & ProjectVersion.archived_at.is_null()
                   & (ProjectVersion.created_at <= cutoff))
            .order_by(ProjectVersion.version_id))
    for v in rows:
        if v.version_id in ctx.gone:
            continue
        key = artifact_key_of(v.artifact_url)
        if key is None:
            step.add("unrecognised_url")
            continue
        remote = _in_remote(c.layout, str(v.artifact_url))
        store = c.remote_objects if remote else c.local_objects
        if store is None:
            step.add("no_store")
            continue
        if not store.exists(key):
            step.add("missing", f"missing {key} (the artifact check handles it)")
            continue
        step.add("archived", f"archive {key} ({_age(v)})")
        if ctx.dry_run:
            continue
        store.set_storage_class(key, "archive")
        if remote and c.local_objects.exists(key):  # the local backup copy follows, out of the hot folder
            c.local_objects.set_storage_class(key, "archive")
        versions.update(c.outbox, v.version_id, artifact_url=store.url(key), archived_at=ctx.now)


def delete_old_rows(ctx: _Ctx, step: StepReport) -> None:
    """Hard-delete rows older than `delete_rows_after_days` unless pinned (or live, or in flight)."""
    cutoff = ctx.now - timedelta(days=ctx.cleanup.cfg.retention.delete_rows_after_days)
    live = _live_ids()
    rows = (ProjectVersion.select().where(ProjectVersion.created_at <= cutoff).order_by(ProjectVersion.version_id))
    for v in rows:
        if v.version_id in ctx.gone:
            continue
        if _protected(v, live):
            step.add("kept_protected")
            continue
        _purge(ctx, v, step, "older than the row retention")


def delete_old_previews(ctx: _Ctx, step: StepReport) -> None:
    """Delete previews older than `delete_previews_after_days` for good, on every droplet (never the live or a
    pinned version's); rows are found by state, so a part-done one is finished (daemon/ops/retention.py)."""
    c = ctx.cleanup
    cutoff = ctx.now - timedelta(days=c.cfg.retention.delete_previews_after_days)
    live = _live_ids()
    rows = ProjectVersion.select().where(retention.pending(cutoff)).order_by(ProjectVersion.version_id)
    for v in rows:
        if v.version_id in ctx.gone:
            continue
        if v.preview_deleted_at is None and _protected(v, live):
            step.add("kept_protected")
            continue
        # The local deployment's id follows from the row alone: a row whose URL an older cleanup nulled still
        # gets its tombstone, and every droplet drops its copy.
        dep = deployment_id_of(c.deployer, v) or (local_deployment_id(v.project_id, v.version_id)
                                          if c.deployer.serves_previews else None)
        step.add("previews" if v.preview_deleted_at is None else "finished",
                 f"delete preview {dep or v.preview_url or '-'} of {v.version_id} ({_age(v)})")
        if ctx.dry_run:
            continue
        try:
            retention.delete_preview(c.outbox, c.deployer, v, ctx.now, dep)
        except Exception as exc:  # one row (one tenant) must not stop the others; the next run finishes it
            step.add("unfinished", f"{v.version_id}: {type(exc).__name__}: {exc}"[:300])
            log.warning("preview of %s not fully deleted", v.version_id, exc_info=True)
    if step.counts.get("unfinished"):
        raise RuntimeError(f"{step.counts['unfinished']} preview(s) not fully deleted; the next run finishes them")


def delete_alias_redeploys(ctx: _Ctx, step: StepReport) -> None:
    """Delete live alias redeploy deployments like any preview: never the one the branch holds now; the others
    once older than `delete_previews_after_days`, or at once when their version's row or preview is gone. The row
    stays (it was billed), marked `deleted_at`, in a fleet's Postgres too."""
    c = ctx.cleanup
    cutoff = ctx.now - timedelta(days=c.cfg.retention.delete_previews_after_days)
    heads: dict[tuple[str, str], int | None] = {}
    deleted: list[str] = []
    rows = AliasRedeploy.select().where(AliasRedeploy.deleted_at.is_null() & (AliasRedeploy.state == "made")
                                        & (AliasRedeploy.deployment_id != "")).order_by(AliasRedeploy.id)
    for r in rows:
        key = (str(r.user_id), str(r.project_id))
        if key not in heads:
            head = livealias.branch_redeploy(*key)
            heads[key] = head.id if head is not None else None
        if r.id == heads[key]:
            step.add("kept_on_branch")
            continue
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == r.version_id)
        gone = v is None or r.version_id in ctx.gone or v.preview_deleted_at is not None
        if not gone and r.created_at > cutoff:
            continue
        step.add("deployments", f"delete alias redeploy {r.deployment_id} of {r.user_id}/{r.project_id} "
                                f"{r.version_id} ({r.created_at:%Y-%m-%d})")
        if ctx.dry_run:
            continue
        try:
            c.deployer.delete(str(r.deployment_id))
        except Exception as exc:  # one tenant's deployment must not stop the others; the next run tries again
            step.add("unfinished", f"{r.deployment_id}: {type(exc).__name__}: {exc}"[:300])
            continue
        AliasRedeploy.update(deleted_at=ctx.now).where(AliasRedeploy.id == r.id).execute()
        deleted.append(str(r.deployment_id))
    if deleted:
        c.ledger.redeploys_deleted(deleted)
    if step.counts.get("unfinished"):
        raise RuntimeError(f"{step.counts['unfinished']} alias redeploy(s) not deleted; the next run tries again")


def _repos(layout: Layout) -> Iterator[tuple[str, str, Path]]:
    root = layout.data_dir / "projects"
    for user_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for proj_dir in sorted(p for p in user_dir.iterdir() if p.is_dir()):
            path = proj_dir / "repo.git"
            if (path / "HEAD").is_file():
                yield user_dir.name, proj_dir.name, path


def slide_dist_windows(ctx: _Ctx, step: StepReport) -> None:
    """Keep dist refs of the newest deployed versions only, then prune what nothing reaches, in every repo."""
    c = ctx.cleanup
    for user_id, project_id, path in _repos(c.layout):
        step.add("repos")
        keep = [x.version_id for x in ProjectVersion.select(ProjectVersion.version_id)
                .where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id)
                       & (ProjectVersion.status == "deployed"))
                .order_by(ProjectVersion.version_id.desc()).limit(DIST_WINDOW)]
        repo = ProjectRepo(path)
        with repo.writing():
            if ctx.dry_run:
                stale = [d for d in repo.dist_versions() if d not in keep]
                step.add("dist_refs_removed", f"{user_id}/{project_id}: drop dist {', '.join(stale)}" if stale
                         else None, n=len(stale))
                continue
            removed = repo.slide_dist_window(keep)
            try:
                freed = repo.prune()
            except HistoryError as exc:
                if exc.code != "history_limit":
                    raise
                # One project over its budget is skipped, said so, and the next one is pruned all the same.
                log.warning("cleanup: %s/%s skipped: %s", user_id, project_id, exc.message)
                step.add("repos_skipped_over_budget", f"{user_id}/{project_id}: skipped: {exc.message}")
                freed = 0
        step.add("dist_refs_removed", f"{user_id}/{project_id}: dropped dist {', '.join(removed)}" if removed
                 else None, n=len(removed))
        step.add("bytes_freed", None, n=freed)


def prune_pnpm_store(ctx: _Ctx, step: StepReport) -> None:
    """`pnpm store prune --store-dir` on the shared store; skipped while a build may be installing from it."""
    c = ctx.cleanup
    before = file_bytes(c.layout.store_dir)
    step.add("store_bytes_before", None, n=before)
    busy = ProjectVersion.select().where(ProjectVersion.status.in_(("building",))).exists()
    if busy:
        step.add("skipped_busy", "a build is running; the store is pruned next time")
        return
    tc = toolchain.for_config(c.cfg)
    argv = [tc.pnpm, "store", "prune", "--store-dir", str(c.layout.store_dir)]
    if ctx.dry_run:
        step.add("would_run", " ".join(argv))
        return
    with tempfile.TemporaryDirectory(dir=c.layout.tmp) as home:
        env = {"PATH": tc.path_env, "HOME": home, "XDG_CACHE_HOME": home, "npm_config_update_notifier": "false",
               "npm_config_store_dir": str(c.layout.store_dir)}
        res = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=PNPM_PRUNE_TIMEOUT_S,
                             stdin=subprocess.DEVNULL, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"pnpm store prune exited {res.returncode}: {' | '.join(tail)}")
    after = file_bytes(c.layout.store_dir)
    step.add("ran", " ".join(argv))
    step.add("bytes_freed", None, n=max(0, before - after))


def check_artifacts(ctx: _Ctx, step: StepReport) -> None:
    """Every artifact_url must exist (HEAD); re-upload from the other copy, or mark the rows needs_rebuild."""
    c = ctx.cleanup
    by_key: dict[str, list[ProjectVersion]] = {}
    for v in ProjectVersion.select().where(ProjectVersion.artifact_url.is_null(False)).order_by(
            ProjectVersion.version_id):
        if v.version_id in ctx.gone:
            continue
        key = artifact_key_of(v.artifact_url)
        if key is None:
            step.add("unrecognised_url")
            continue
        by_key.setdefault(key, []).append(v)
    for key, rows in by_key.items():
        step.add("checked")
        remote = _in_remote(c.layout, str(rows[0].artifact_url))
        store = c.remote_objects if remote else c.local_objects
        if store is None:
            step.add("no_store", f"{key}: its store is not configured here")
            continue
        if store.exists(key):
            continue
        step.add("missing")
        source = c.local_objects if remote else c.remote_objects
        if source is not None and source.exists(key):
            step.add("reuploaded", f"{key}: copy back from the {source.name} store")
            if not ctx.dry_run:
                with tempfile.TemporaryDirectory(dir=c.layout.tmp) as tmp:
                    copy = Path(tmp) / "artifact.zip"
                    source.get_file(key, copy)
                    store.put_file(key, copy, "application/zip")
            continue
        for v in rows:
            if v.needs_rebuild:
                continue
            step.add("marked_needs_rebuild", f"{v.version_id}: {key} lost everywhere; needs_rebuild")
            if not ctx.dry_run:
                versions.update(c.outbox, v.version_id, needs_rebuild=True)


def check_kv(ctx: _Ctx, step: StepReport) -> None:
    """The KV pointer of every project must name its live version; rewrite it where it does not."""
    c = ctx.cleanup
    ttl_s = c.cfg.kv.ttl_days * 86400
    moved = False
    for user_id, project_id in _projects():
        step.add("projects")
        if not (valid_id(user_id) and valid_id(project_id)):  # a row from before sync.names: no KV key
            step.add("invalid_id")
            continue
        live = versions.live_version(user_id, project_id)
        key = versions.pointer_key(user_id, project_id)
        if c.outbox.outbox.pending("kv", key):
            step.add("pending_sync")  # the outbox already carries the fix
            continue
        raw = c.kv.get(key)
        current: dict[str, Any] | None = None
        if raw:
            try:
                data = json.loads(raw)
                current = data if isinstance(data, dict) else None
            except ValueError:
                current = None
        if live is None:
            if raw:
                step.add("orphan_pointers", f"{key}: pointer without a deployed version (left alone)")
            continue
        if current is None and raw is None:
            proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
            changed = (proj.updated_at if proj is not None else None) or live.updated_at
            if changed is not None and changed < ctx.now - timedelta(seconds=ttl_s):
                step.add("expired")  # the pointer aged out by its TTL, as the seed intends; reads use the DB
                continue
        if (current is not None and current.get("latestVersionId") == live.version_id
                and current.get("previewUrl") == live.preview_url):
            step.add("consistent")
            continue
        was = current.get("latestVersionId") if current else None
        step.add("repaired", f"{key}: {was or 'missing'} -> {live.version_id}")
        if ctx.dry_run:
            continue
        with database.atomic("IMMEDIATE"):
            versions.set_pointer(c.outbox, live, ttl_s)
        moved = True
    if moved:
        golive.pointer_moved(c.kv, c.sync_loop)


def refresh_storage(ctx: _Ctx, step: StepReport) -> None:
    """Bring every user's storage gauge (the storage quota) up to date with the object store."""
    if ctx.dry_run:
        return
    for user_id, n in quotas.refresh_all_storage(ctx.cleanup.layout.objects).items():
        step.add("users", f"{user_id}: {n} bytes stored")


Step = Callable[[_Ctx, StepReport], None]
STEPS: list[tuple[str, Step]] = [
    ("keep_latest", keep_latest),
    ("delete_old_rows", delete_old_rows),  # before archiving: no point moving a zip that goes tonight
    ("archive_artifacts", archive_artifacts),
    ("delete_old_previews", delete_old_previews),
    ("delete_alias_redeploys", delete_alias_redeploys),  # after the previews: a tombstoned version's go too
    ("slide_dist_windows", slide_dist_windows),
    ("prune_pnpm_store", prune_pnpm_store),
    ("check_artifacts", check_artifacts),
    ("check_kv", check_kv),
    ("refresh_storage", refresh_storage),  # last: recounts the storage gauges after every deletion above
]
