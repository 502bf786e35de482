"""Catching up: a droplet that takes a project's lease from another droplet (or after a restart) makes its local
copy current from the shared stores before writing to it: rows from Postgres, history from the packs in the
bucket, the live version and undo/redo stacks from the lease row."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from daemon.core import versions
from daemon.core.db import (
    ACTIVE_STATUSES,
    AliasRedeploy,
    AliasRetry,
    BuildUsage,
    Project,
    ProjectVersion,
    database,
    utcnow,
)
from daemon.core.errors import AppError, Unavailable
from daemon.core.layout import Layout
from daemon.fleet.ledger import UsageStore
from daemon.fleet.packs import load_packs
from daemon.history import HistoryError, ProjectRepo, lock_for
from sync.lease import Lease
from sync.loop import SyncLoop
from sync.objects import ObjectStore
from sync.outbox import EnabledOutbox
from sync.replica import Replica

log = logging.getLogger("previewd.fleet")


@dataclass(frozen=True)
class Stores:
    """What a fleet droplet reads and writes besides its leases: its data dir, the fleet's Postgres rows, the
    outbox its row changes go through (fenced by the lease epoch), the sync loop that pushes them, and the object
    stores holding the recovery packs."""

    layout: Layout
    replica: Replica
    outbox: EnabledOutbox
    sync_loop: SyncLoop
    local_objects: ObjectStore
    remote_objects: ObjectStore | None
    usage: UsageStore | None = None  # meters and alias redeploys of every droplet


def catch_up(stores: Stores, lease: Lease) -> dict[str, int]:
    """Make the local copy of a newly leased project current: rows from Postgres, history from the packs in
    S3 (restored when absent or older), its live version and undo/redo stacks from the lease row; versions an
    earlier holder left unfinished are failed as `interrupted`."""
    started = time.monotonic()
    u, p = lease.user_id, lease.project_id
    try:
        remote = stores.replica.fetch_versions(u, p)
    except Exception as exc:
        raise Unavailable(f"cannot read the project's rows from Postgres: {exc}", code="catch_up_failed",
                          retry_after=2) from exc
    changed = _merge_rows(remote, takeover=lease.takeover)
    if stores.usage is not None:
        try:
            _merge_usage(stores.usage, u, p)
        except Exception as exc:
            raise Unavailable(f"cannot read the project's meters from Postgres: {exc}", code="catch_up_failed",
                              retry_after=2) from exc
    restored = _catch_up_history(stores, u, p, remote)
    orphans = 0
    if lease.takeover:
        for rec in remote:
            if rec["status"] in ACTIVE_STATUSES:
                versions.update(stores.outbox, rec["version_id"], status="failed", failure_reason="interrupted",
                                failure_message=f"droplet {lease.previous} lost the lease of this project while "
                                                f"this version was {rec['status']}; droplet {lease.holder} took "
                                                "over")
                orphans += 1
    _set_head(lease)
    if lease.takeover and _on_a_branch(u, p):  # the predecessor may have died before moving the live alias
        AliasRetry.insert(user_id=u, project_id=p, attempts=0, next_at=utcnow()).on_conflict_ignore().execute()
    log.info("caught up %s/%s at epoch %d in %.0f ms: %d rows changed, history %s, %d orphans interrupted",
             u, p, lease.epoch, (time.monotonic() - started) * 1000, changed, "restored" if restored else "current",
             orphans)
    stores.sync_loop.nudge()
    return {"rows": changed, "restored": int(restored), "orphans": orphans}


def _merge_rows(remote: list[dict[str, object]], *, takeover: bool) -> int:
    """Copy rows the local database lacks or has older; on a takeover Postgres wins over any local row."""
    changed = 0
    with database.atomic("IMMEDIATE"):
        for rec in remote:
            row = versions.row_from_record(rec)
            local = ProjectVersion.get_or_none(ProjectVersion.version_id == rec["version_id"])
            if local is None:
                ProjectVersion.create(**row)
                changed += 1
            elif int(local.row_version) < int(row["row_version"]) or (
                    takeover and int(local.row_version) != int(row["row_version"])):
                ProjectVersion.update(**{k: v for k, v in row.items() if k != "version_id"}).where(
                    ProjectVersion.version_id == rec["version_id"]).execute()
                changed += 1
    return changed


def _merge_usage(usage: UsageStore, user_id: str, project_id: str) -> None:
    """The project's meter rows this droplet lacks (so closing a predecessor's build here closes its meter, and
    the fleet's copy with it), and its live alias redeploys (so what the branch holds is known here: a redeploy
    the predecessor made, or asked for, is never made again)."""
    meters = usage.meters_of(user_id, project_id)
    redeploys = usage.redeploys_of(user_id, project_id)
    with database.atomic("IMMEDIATE"):
        for m in meters:
            if BuildUsage.get_or_none(BuildUsage.version_id == m["version_id"]) is None:
                BuildUsage.create(**{**m, "created_at": _naive(m["created_at"])})
        for r in redeploys:
            row = AliasRedeploy.get_or_none(AliasRedeploy.redeploy_id == r["redeploy_id"])
            fields = {"state": r["state"], "deployment_id": r["deployment_id"] or "",
                      "deleted_at": _naive(r["deleted_at"])}
            if row is None:
                AliasRedeploy.create(user_id=r["user_id"], project_id=r["project_id"], version_id=r["version_id"],
                                     over=r["over"], month=r["month"], redeploy_id=r["redeploy_id"],
                                     created_at=_naive(r["created_at"]), **fields)
            else:
                AliasRedeploy.update(**fields).where(AliasRedeploy.id == row.id).execute()


def _on_a_branch(user_id: str, project_id: str) -> bool:
    """The project was uploaded to a platform branch (Cloudflare): its live alias may need a redeploy."""
    return bool(ProjectVersion.select().where((ProjectVersion.user_id == user_id)
                                              & (ProjectVersion.project_id == project_id)
                                              & ProjectVersion.cf_deployment_id.is_null(False)).exists())


def _naive(t: object) -> object:
    """A Postgres timestamptz as the naive UTC time SQLite rows hold."""
    if isinstance(t, datetime) and t.tzinfo is not None:
        return t.astimezone(UTC).replace(tzinfo=None)
    if isinstance(t, str):
        return versions.row_from_record({"created_at": t})["created_at"]
    return t


def _catch_up_history(stores: Stores, user_id: str, project_id: str, remote: list[dict[str, object]]) -> bool:
    """Restore the git history from the packs when the local repository is absent or lacks a deployed version."""
    path = stores.layout.repo_path(user_id, project_id)
    wanted = [str(r["version_id"]) for r in remote if r["status"] == "deployed"]
    if not wanted:
        return False
    if path.exists():
        repo = ProjectRepo.open_or_init(path)
        if all(repo.has_version(v) for v in wanted):
            return False
    try:
        packs = load_packs(stores.layout, stores.local_objects, stores.remote_objects, user_id, project_id)
    except AppError as exc:
        if exc.code == "no_packs":
            return False
        raise
    stale = path.with_name(f".{path.name}.stale-{os.getpid()}-{int(time.time() * 1000)}")
    with lock_for(path).writing():
        if path.exists():
            os.rename(path, stale)
        try:
            ProjectRepo.restore(path, packs)
        except HistoryError as exc:
            if stale.exists():
                shutil.rmtree(path, ignore_errors=True)
                os.rename(stale, path)
            raise Unavailable(exc.message or exc.code, code=exc.code) from exc
    shutil.rmtree(stale, ignore_errors=True)
    return True


def _set_head(lease: Lease) -> None:
    """The project's live version and undo/redo stacks as the fleet last recorded them (when known here)."""
    if not lease.live_version_id:
        return
    live = ProjectVersion.get_or_none(ProjectVersion.version_id == lease.live_version_id)
    if live is None or live.status != "deployed":
        return
    with database.atomic("IMMEDIATE"):
        proj, _ = Project.get_or_create(user_id=lease.user_id, project_id=lease.project_id)
        proj.live_version_id = lease.live_version_id
        proj.undo_stack = json.dumps(list(lease.undo))
        proj.redo_stack = json.dumps(list(lease.redo))
        proj.updated_at = utcnow()
        proj.save()
