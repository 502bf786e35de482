"""Version rows: creation and status transitions, each written with its outbox rows in one transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from daemon.core.db import ACTIVE_STATUSES, Project, ProjectVersion, database, to_record, utcnow
from daemon.core.errors import Conflict, NotFound
from daemon.core.ids import new_version_id


class OutboxWriter(Protocol):
    """The part of sync's outbox the daemon writes to (inside its own transaction)."""

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> None: ...


def pointer_key(user_id: str, project_id: str) -> str:
    """The seed's KV key."""
    return f"{user_id}:{project_id}"


def pointer_value(v: ProjectVersion) -> dict[str, Any]:
    """The seed's KV value for a live version."""
    return {"latestVersionId": v.version_id, "previewUrl": v.preview_url, "timestamp": int(time.time() * 1000)}


def _replicate(outbox: OutboxWriter | None, v: ProjectVersion) -> None:
    if outbox is not None:
        outbox.add(database.connection(), "replica", v.version_id, to_record(v))


def in_flight(user_id: str, project_id: str) -> ProjectVersion | None:
    """The project's queued or running version, if any."""
    return (ProjectVersion.select()
            .where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id)
                   & ProjectVersion.status.in_(ACTIVE_STATUSES))
            .order_by(ProjectVersion.version_id.desc()).first())


def create(outbox: OutboxWriter | None, *, user_id: str, project_id: str, prompt: str, kind: str,
           framework: str | None = None, parent_version_id: str | None = None,
           rollback_of: str | None = None, status: str = "queued",
           admit: Callable[[], None] | None = None, **fields: Any) -> ProjectVersion:
    """Insert a version unless the project already has one in flight (409 naming it).

    ``admit`` runs inside the same transaction after the in-flight check (rate caps), so a refused request
    neither counts against a cap nor leaves a row.
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
            version_id=new_version_id(), user_id=user_id, project_id=project_id, prompt=prompt, kind=kind,
            framework=framework, parent_version_id=parent_version_id, base_snapshot_id=parent_version_id,
            rollback_of=rollback_of, status=status, created_at=now, updated_at=now, row_version=1, **fields)
        _replicate(outbox, v)
        return v


def update(outbox: OutboxWriter | None, version_id: str, **fields: Any) -> ProjectVersion:
    """Change a row (status and/or fields), bumping row_version so replicas never regress."""
    with database.atomic("IMMEDIATE"):
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
        if v is None:
            raise NotFound(f"version {version_id} not found", code="version_not_found")
        if "claude_json" in fields and not isinstance(fields["claude_json"], str | None):
            fields["claude_json"] = json.dumps(fields["claude_json"])
        for k, val in fields.items():
            setattr(v, k, val)
        v.row_version = int(v.row_version) + 1
        v.updated_at = utcnow()
        v.save()
        _replicate(outbox, v)
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
        proj.undo_stack = json.dumps(undo[-200:])
        proj.redo_stack = "[]"
    proj.live_version_id = v.version_id
    proj.updated_at = utcnow()
    proj.save()
    set_pointer(outbox, v, ttl_s)


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
