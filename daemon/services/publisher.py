"""Publisher: what is live and how it moves (the preview pointer, rollback, undo and redo, pin and unpin)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import pointers, versions
from daemon.core.db import ProjectVersion
from daemon.intake import rollback as rolling_back
from daemon.publish import golive

if TYPE_CHECKING:
    from daemon.intake.queue import BuildQueue
    from daemon.runtime import Runtime


class Publisher:
    """Moves a project's live version; every move goes through `daemon.publish.golive` or `versions.update` under
    the project's fleet lease. Methods block (database, KV): call them off the event loop, but `pointer_nowait`."""

    def __init__(self, rt: Runtime, queue: BuildQueue) -> None:
        self._rt = rt
        self._queue = queue

    def pointer_nowait(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The preview pointer when the KV can answer at once (a local KV, not busy); None otherwise."""
        return pointers.read_nowait(self._rt.kv, user_id, project_id)

    def pointer(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The preview pointer: the KV first, the database second (the seed's retrieve flow); None without one."""
        return pointers.read(self._rt.kv, user_id, project_id)

    def rollback(self, user_id: Any, project_id: Any, target_id: str, org_id: str | None = None) -> ProjectVersion:
        """A new version equal to the target: its artifact redeployed when it exists, else its sources rebuilt."""
        return rolling_back.rollback(self._rt, self._queue, user_id, project_id, target_id, org_id)

    def rollback_to(self, version_id: str) -> ProjectVersion:
        """Roll back to a version named by its id alone (the dashboard's action): 404 for an unknown one."""
        target = versions.get(version_id)
        return self.rollback(target.user_id, target.project_id, version_id)

    def walk(self, user_id: str, project_id: str, direction: str) -> ProjectVersion:
        """Undo or redo: the version on top of that stack goes live again, without a rebuild."""
        return golive.walk(self._rt, user_id, project_id, direction)

    def set_pinned(self, version_id: str, pinned: bool) -> ProjectVersion:
        """Pin or unpin a version (404 unknown); a no-op when it already is, so the row version does not move."""
        v = versions.get(version_id)
        if bool(v.pinned) == pinned:
            return v
        self._rt.fleet.admit(v.user_id, v.project_id)
        return versions.update(self._rt.outbox, version_id, pinned=pinned)
