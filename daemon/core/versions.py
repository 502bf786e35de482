"""Version rows: the one record format, creation, status transitions, going live and the undo/redo stacks.

Every change is written with its outbox rows in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from daemon.core import quotas
from daemon.core.db import ACTIVE_STATUSES, Project, ProjectVersion, database, utcnow
from daemon.core.errors import Conflict, NotFound
from daemon.core.ids import check_project_ids, new_version_id, valid_version_id
from sync.replica.base import RECORD_FIELDS, format_time, parse_time

_BOOLS = ("needs_rebuild", "pinned", "install_skipped")
_TIMES = ("created_at", "archived_at", "updated_at", "deployed_at", "preview_deleted_at")
_STACK_CAP = 200
# JSON text locally, objects in records and the API.
_JSON_COLUMNS = ("claude_json", "checks", "timings", "repair", "repair_request")


class OutboxWriter(Protocol):
    """The part of sync's outbox the daemon writes to (inside its own transaction)."""

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> None: ...


def pointer_key(user_id: str, project_id: str) -> str:
    """The seed's KV key."""
    return f"{user_id}:{project_id}"


def pointer_value(v: ProjectVersion) -> dict[str, Any]:
    """The seed's KV value for a live version."""
    return {"latestVersionId": v.version_id, "previewUrl": v.preview_url, "timestamp": int(time.time() * 1000)}


# -- the one record format ---------------------------------------------------------------------------------

def _time(value: Any) -> datetime | None:
    """A stored time (datetime, or SQLite's text form) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    return parse_time(value if isinstance(value, datetime) else str(value).replace(" ", "T"), "time")


def record_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """The replica record (sync's RECORD_FIELDS) of a row's column values: a model's, or a raw SQLite row's."""
    rec: dict[str, Any] = {}
    for k in RECORD_FIELDS:
        val = data.get(k)
        if k in _BOOLS:
            val = bool(val)
        elif k in _JSON_COLUMNS:
            val = json.loads(val) if isinstance(val, str) and val else (val or None)
        elif k in _TIMES:
            val = format_time(_time(val))
        elif k == "row_version":
            val = int(val or 0)
        rec[k] = val
    return rec


def to_record(v: ProjectVersion) -> dict[str, Any]:
    """The plain record handed to sync (the seed's columns plus the daemon's)."""
    return record_of(v.__data__)


def row_from_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Column values for a local row rebuilt from a replica record (restore on an empty data dir)."""
    fields = {k: rec.get(k) for k in RECORD_FIELDS}
    for k in _JSON_COLUMNS:
        fields[k] = json.dumps(rec[k]) if rec.get(k) is not None else None
    for k in ("created_at", "archived_at", "updated_at", "preview_deleted_at"):
        t = _time(rec.get(k))
        fields[k] = t.replace(tzinfo=None) if t is not None else (utcnow() if k in ("created_at", "updated_at")
                                                                   else None)
    fields["row_version"] = int(rec.get("row_version") or 1)
    return fields


# Column -> camelCase key of the API's version JSON, in the order the API shows them.
_JSON_KEYS = (
    ("version_id", "versionId"), ("user_id", "userId"), ("project_id", "projectId"), ("prompt", "prompt"),
    ("status", "status"), ("kind", "kind"), ("parent_version_id", "parentVersionId"),
    ("rollback_of", "rollbackOf"), ("preview_url", "previewUrl"), ("artifact_url", "artifactUrl"),
    ("framework", "framework"), ("build_duration_ms", "buildDurationMs"),
    ("install_duration_ms", "installDurationMs"), ("install_skipped", "installSkipped"),
    ("deploy_duration_ms", "deployDurationMs"), ("output_size_bytes", "outputSizeBytes"),
    ("failure_reason", "failureReason"), ("failure_message", "failureMessage"), ("audit_status", "auditStatus"),
    ("needs_rebuild", "needsRebuild"), ("pinned", "pinned"), ("cf_deployment_id", "cfDeploymentId"),
    ("node_version", "nodeVersion"), ("pnpm_version", "pnpmVersion"), ("render_status", "renderStatus"),
    ("render_detail", "renderDetail"), ("target_package", "targetPackage"), ("checks", "checks"),
    ("timings", "timings"), ("repair_of", "repairOf"), ("repair_attempt", "repairAttempt"), ("repair", "repair"),
    ("repair_request", "repairRequest"), ("created_at", "createdAt"),
    ("updated_at", "updatedAt"),
)


def _iso_ms(value: Any) -> str | None:
    t = _time(value)
    return None if t is None else t.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def version_json(src: ProjectVersion | Mapping[str, Any]) -> dict[str, Any]:
    """A version as the API shows it (camelCase, like the seed's shapes): from a local row or a replica record.

    A record from the replica lacks the daemon-only columns (they come out null) and says `"source": "replica"`.
    """
    data: Mapping[str, Any] = src.__data__ if isinstance(src, ProjectVersion) else src
    out: dict[str, Any] = {}
    for col, key in _JSON_KEYS:
        val = data.get(col)
        if col in _BOOLS:
            val = bool(val)
        elif col in _TIMES:
            val = _iso_ms(val)
        elif col in ("render_detail", "checks", "timings", "repair", "repair_request"):
            val = (json.loads(val) if val else None) if not isinstance(val, dict) else val
        out[key] = val
    if not isinstance(src, ProjectVersion):
        out["source"] = "replica"
    return out


def _replicate(outbox: OutboxWriter | None, v: ProjectVersion) -> None:
    if outbox is not None:
        outbox.add(database.connection(), "replica", v.version_id, to_record(v))


def get(version_id: str) -> ProjectVersion:
    """A version by id, or 404."""
    v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id) if valid_version_id(version_id) else None
    if v is None:
        raise NotFound(f"version {version_id} not found", code="version_not_found")
    return v


def in_flight(user_id: str, project_id: str) -> ProjectVersion | None:
    """The project's queued or running version, if any."""
    return (ProjectVersion.select()
            .where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id)
                   & ProjectVersion.status.in_(ACTIVE_STATUSES))
            .order_by(ProjectVersion.version_id.desc()).first())


def create(outbox: OutboxWriter | None, *, user_id: str, project_id: str, prompt: str, kind: str,
           framework: str | None = None, parent_version_id: str | None = None,
           rollback_of: str | None = None, status: str = "queued",
           admit: Callable[[], None] | None = None, on_created: Callable[[ProjectVersion], None] | None = None,
           version_id: str | None = None, **fields: Any) -> ProjectVersion:
    """Insert a version unless the project already has one in flight (409 naming it); `version_id`: one chosen
    before (admission reserves the meter row under it), else a new one.

    ``admit`` runs inside the same transaction after the in-flight check (rate caps, quotas), so a refused
    request neither counts against a cap nor leaves a row; ``on_created`` runs in it after the insert (the meter).
    """
    with database.atomic("IMMEDIATE"):
        busy = in_flight(user_id, project_id)
        if busy is not None:
            raise Conflict(f"project {project_id} already has build {busy.version_id} {busy.status}",
                           code="build_in_flight", versionId=busy.version_id)
        if admit is not None:
            admit()
        now = utcnow()
        v = ProjectVersion.create(
            version_id=version_id or new_version_id(), user_id=user_id, project_id=project_id, prompt=prompt, kind=kind,
            framework=framework, parent_version_id=parent_version_id, base_snapshot_id=parent_version_id,
            rollback_of=rollback_of, status=status, created_at=now, updated_at=now, row_version=1, **fields)
        _replicate(outbox, v)
        if on_created is not None:
            on_created(v)
        return v


def update(outbox: OutboxWriter | None, version_id: str, **fields: Any) -> ProjectVersion:
    """Change a row (status and/or fields), bumping row_version so replicas never regress."""
    with database.atomic("IMMEDIATE"):
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
        if v is None:
            raise NotFound(f"version {version_id} not found", code="version_not_found")
        for k in _JSON_COLUMNS:
            if k in fields and not isinstance(fields[k], str | None):
                fields[k] = json.dumps(fields[k])
        merge = fields.pop("add_timings", None)
        if merge:
            # Steps finishing after the row was written (checks, render) add their figure to the breakdown.
            have = json.loads(fields.get("timings") or v.timings or "{}")
            fields["timings"] = json.dumps({**have, **merge})
        for k, val in fields.items():
            setattr(v, k, val)
        v.row_version = int(v.row_version) + 1
        v.updated_at = utcnow()
        v.save()
        _replicate(outbox, v)
        if quotas.closes(v):  # the build's final state and its meter commit together, exactly once
            quotas.close_meter(outbox, v)
        return v


def set_pointer(outbox: OutboxWriter | None, v: ProjectVersion, ttl_s: int) -> None:
    """Queue the KV pointer move to a live version (in the caller's transaction when there is one)."""
    if outbox is not None:
        key = pointer_key(v.user_id, v.project_id)
        outbox.add(database.connection(), "kv", key,
                   {"key": key, "value": json.dumps(pointer_value(v)), "ttl": ttl_s})


def set_live(outbox: OutboxWriter | None, v: ProjectVersion, ttl_s: int, *, walk: str = "new") -> None:
    """Make `v` the project's live version and move the KV pointer, in the caller's transaction.

    walk="new" (a build or rollback went live) pushes the old live version on the undo stack and clears redo,
    as editors do; "undo"/"redo" are moves along the stacks, which the caller has already adjusted.
    """
    proj, _ = Project.get_or_create(user_id=v.user_id, project_id=v.project_id)
    if walk == "new":
        undo = proj.stack("undo")
        if proj.live_version_id and proj.live_version_id != v.version_id:
            undo.append(proj.live_version_id)
        proj.undo_stack = json.dumps(undo[-_STACK_CAP:])
        proj.redo_stack = "[]"
    proj.live_version_id = v.version_id
    proj.updated_at = utcnow()
    proj.save()
    set_pointer(outbox, v, ttl_s)


def go_live(outbox: OutboxWriter | None, version_id: str, ttl_s: int, **fields: Any) -> ProjectVersion:
    """The version is live: row deployed, the project's live version and the KV pointer moved, in one transaction."""
    with database.atomic("IMMEDIATE"):
        v = update(outbox, version_id, status="deployed", deployed_at=utcnow(), **fields)
        set_live(outbox, v, ttl_s)
    return v


def walk(outbox: OutboxWriter | None, user_id: str, project_id: str, direction: str, ttl_s: int) -> ProjectVersion:
    """Undo or redo: make the version on top of that stack live again (no rebuild); 404/409 when impossible."""
    with database.atomic("IMMEDIATE"):
        proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
        if proj is None:
            raise NotFound(f"project {user_id}/{project_id} not found", code="project_not_found")
        src, dst = ("undo", "redo") if direction == "undo" else ("redo", "undo")
        stack, other = proj.stack(src), proj.stack(dst)
        while stack:
            candidate = ProjectVersion.get_or_none(ProjectVersion.version_id == stack.pop())
            # a version whose preview the retention cleanup removed cannot be made live without a rebuild
            if candidate is not None and candidate.status == "deployed" and candidate.preview_url:
                break
        else:
            raise Conflict(f"nothing to {direction}", code=f"nothing_to_{direction}")
        if proj.live_version_id:
            other.append(proj.live_version_id)
        setattr(proj, f"{src}_stack", json.dumps(stack))
        setattr(proj, f"{dst}_stack", json.dumps(other[-_STACK_CAP:]))
        proj.save()
        set_live(outbox, candidate, ttl_s, walk=direction)
    return candidate


def navigation(user_id: str, project_id: str) -> dict[str, Any]:
    """The live version and what undo/redo would reach."""
    proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
    if proj is None:
        return {"liveVersionId": None, "undo": [], "redo": []}
    return {"liveVersionId": proj.live_version_id, "undo": proj.stack("undo")[::-1], "redo": proj.stack("redo")[::-1]}


def forget(v: ProjectVersion) -> None:
    """Take a deleted version off its project's undo/redo stacks (in the caller's transaction)."""
    proj = Project.get_or_none((Project.user_id == v.user_id) & (Project.project_id == v.project_id))
    if proj is None:
        return
    undo = [x for x in proj.stack("undo") if x != v.version_id]
    redo = [x for x in proj.stack("redo") if x != v.version_id]
    if (undo, redo) != (proj.stack("undo"), proj.stack("redo")):
        proj.undo_stack, proj.redo_stack = json.dumps(undo), json.dumps(redo)
        proj.save()


def confirm_artifact(conn: sqlite3.Connection, outbox: OutboxWriter | None, version_id: str, url: str) -> None:
    """The artifact upload was confirmed: record its URL and replicate the row, on sync's own connection and
    inside its transaction (it holds the write lock, so peewee's connection cannot be used here)."""
    conn.execute("UPDATE project_versions SET artifact_url = ?, row_version = row_version + 1, "
                 "updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE version_id = ?", (url, version_id))
    cur = conn.execute("SELECT * FROM project_versions WHERE version_id = ?", (version_id,))
    row = cur.fetchone()
    if row is not None and outbox is not None:
        rec = record_of(dict(zip([d[0] for d in cur.description], row, strict=True)))
        outbox.add(conn, "replica", version_id, rec)


def live_version(user_id: str, project_id: str) -> ProjectVersion | None:
    """The project's live version: the one undo/redo/builds made live, else the newest deployed."""
    proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
    if proj is not None and proj.live_version_id:
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == proj.live_version_id)
        if v is not None and v.status == "deployed":
            return v
    return newest_deployed(user_id, project_id)


def newest_deployed(user_id: str, project_id: str) -> ProjectVersion | None:
    """The newest deployed version of a project."""
    return (ProjectVersion.select()
            .where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id)
                   & (ProjectVersion.status == "deployed"))
            .order_by(ProjectVersion.created_at.desc(), ProjectVersion.version_id.desc()).first())


def history(user_id: str, project_id: str, limit: int = 200, before: str | None = None) -> list[ProjectVersion]:
    """Versions of a project, newest first."""
    q = ProjectVersion.select().where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id))
    if before:
        q = q.where(ProjectVersion.version_id < before)
    return list(q.order_by(ProjectVersion.version_id.desc()).limit(limit))


def project_exists(user_id: str, project_id: str) -> bool:
    """True when the project has any version at all."""
    return ProjectVersion.select().where((ProjectVersion.user_id == user_id)
                                         & (ProjectVersion.project_id == project_id)).exists()


def recover_interrupted(outbox: OutboxWriter | None) -> tuple[list[str], list[str]]:
    """At start: fail what a dead process left building/deploying; return (failed ids, queued ids to re-enqueue)."""
    failed: list[str] = []
    for v in ProjectVersion.select().where(ProjectVersion.status.in_(("building", "deploying"))
                                           & ProjectVersion.cf_deployment_id.is_null()):
        update(outbox, v.version_id, status="failed", failure_reason="interrupted",
               failure_message=f"the daemon stopped while this version was {v.status}")
        failed.append(v.version_id)
    queued = [v.version_id for v in ProjectVersion.select(ProjectVersion.version_id)
              .where(ProjectVersion.status == "queued").order_by(ProjectVersion.version_id)]
    return failed, queued


def history_json(user_id: Any, project_id: Any, limit: int = 200) -> list[dict[str, Any]]:
    """History panel: a project's versions, newest first, as the API shows them (400 for bad ids)."""
    check_project_ids(user_id, project_id)
    out = [version_json(v) for v in history(user_id, project_id, limit=limit)]
    for item in out:  # up to ~15 KB each: `GET /versions/{id}` shows it, the list says whether there is one
        item["repairRequest"] = None if item["repairRequest"] is None else {"ready": True}
    return out
