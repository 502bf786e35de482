"""Source diffs between two versions of one project, from their git commits (build output excluded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.errors import BadRequest, Conflict
from daemon.history import HistoryError

if TYPE_CHECKING:
    from daemon.runtime import Runtime

DIFF_MODES = ("patch", "stat", "files", "visual", "visual-stats")


def diff(rt: Runtime, a_id: str, b_id: str, mode: str) -> Any:
    """The change from version a to version b: a unified patch, a per-file stat, or the changed paths."""
    if mode not in DIFF_MODES:
        raise BadRequest(f"mode must be one of {', '.join(DIFF_MODES)}", code="invalid_field", field="mode")
    a, b = versions.get(a_id), versions.get(b_id)
    if (a.user_id, a.project_id) != (b.user_id, b.project_id):
        raise BadRequest("the two versions belong to different projects", code="different_projects")
    for v in (a, b):
        if v.status in ("queued", "building"):
            raise Conflict(f"version {v.version_id} is still {v.status}", code="version_building",
                           versionId=v.version_id)
    repo = rt.repo(a.user_id, a.project_id)
    for v in (a, b):
        if not repo.has_version(v.version_id):
            raise Conflict(f"version {v.version_id} has no source snapshot (it failed before one was taken)",
                           code="no_snapshot", versionId=v.version_id)
    try:
        return repo.diff(a.version_id, b.version_id, mode)  # type: ignore[arg-type]
    except HistoryError as exc:
        raise Conflict(exc.message or exc.code, code=exc.code) from exc
