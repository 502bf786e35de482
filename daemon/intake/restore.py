"""Restore: rebuild a project's git history from the packs in object storage, and its rows from the replica."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import Conflict, Unavailable
from daemon.core.ids import check_project_ids
from daemon.fleet.packs import load_packs
from daemon.history import HistoryError, ProjectRepo, lock_for

if TYPE_CHECKING:
    from daemon.runtime import Runtime


def restore(rt: Runtime, user_id: Any, project_id: Any) -> dict[str, Any]:
    """Rebuild a project's repository from the packs in object storage (and its rows from the replica)."""
    check_project_ids(user_id, project_id)
    rt.fleet.admit(user_id, project_id)
    path = rt.layout.repo_path(user_id, project_id)
    if rt.fleet.catches_up and path.exists():
        # a fleet droplet restores (or catches up) on taking the lease: report what it holds now
        return {"userId": user_id, "projectId": project_id, "versions": len(ProjectRepo(path).versions()),
                "caughtUp": True}
    packs = load_packs(rt.layout, rt.local_objects, rt.remote_objects, user_id, project_id)
    rows = _restore_rows(rt, user_id, project_id)
    with lock_for(path).writing():
        if path.exists():
            raise Conflict(f"project {user_id}/{project_id} already has a repository; restore only fills an empty "
                           "data dir", code="repo_exists")
        try:
            repo = ProjectRepo.restore(path, packs)
        except HistoryError as exc:
            raise Unavailable(exc.message or exc.code, code=exc.code, **{k: str(v) for k, v in exc.detail.items()}) \
                from exc
    return {"userId": user_id, "projectId": project_id, "packs": len(packs),
            "versions": len(repo.versions()), "rowsRestored": rows}


def _restore_rows(rt: Runtime, user_id: str, project_id: str) -> int:
    """Copy version rows the local database lacks from the Postgres replica (when one is configured)."""
    if rt.replica is None:
        return 0
    try:
        remote = rt.replica.fetch_versions(user_id, project_id)
    except Exception as exc:
        raise Unavailable(f"cannot read version rows from the replica: {exc}", code="restore_failed") from exc
    added = 0
    for rec in remote:
        if ProjectVersion.get_or_none(ProjectVersion.version_id == rec["version_id"]) is not None:
            continue
        ProjectVersion.create(**versions.row_from_record(rec))
        added += 1
    return added
