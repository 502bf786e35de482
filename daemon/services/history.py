"""HistoryView: reading a project's versions (here or in the replica), their diffs, screenshots and sources."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.ops import replication as syncops
from daemon.publish import diffs, screens

if TYPE_CHECKING:
    from daemon.runtime import Runtime


class HistoryView:
    """Read-only views of the history; the answer caps ([server] max_diff_bytes, max_screenshot_bytes) are the
    caller's to apply, since the API refuses past them and the dashboard says so on the page. Methods block."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    @property
    def max_diff_bytes(self) -> int:
        """The cap on a source diff's answer."""
        return self._rt.cfg.server.max_diff_bytes

    @property
    def max_screenshot_bytes(self) -> int:
        """The cap on a screenshot (a visual diff may be three of them side by side)."""
        return self._rt.cfg.server.max_screenshot_bytes

    @property
    def renders(self) -> bool:
        """Whether deployed versions are render-checked (screenshots, visual diffs) on this droplet."""
        return bool(self._rt.cfg.render.enabled)

    def live_url(self, user_id: str, project_id: str) -> str | None:
        """The project's stable address that always serves its live version (a fleet's alias), if it has one."""
        return self._rt.fleet.live_alias_url(user_id, project_id)

    def history(self, user_id: str, project_id: str, limit: int) -> dict[str, Any]:
        """The history panel, newest first; a project this droplet does not hold is answered from the Postgres
        replica; `liveUrl` when the project has a stable live address."""
        items = versions.history_json(user_id, project_id, limit)
        if not items:
            items = syncops.remote_history(self._rt.replica, user_id, project_id)[:limit]
        alias = self._rt.fleet.live_alias_url(user_id, project_id)
        return {"versions": items, **({"liveUrl": alias} if alias else {})}

    def remote_version(self, version_id: str) -> dict[str, Any] | None:
        """One version from the Postgres replica (a version another droplet built), or None."""
        return syncops.remote_version(self._rt.replica, version_id)

    def diff(self, a_id: str, b_id: str, mode: str) -> Any:
        """Two versions' sources compared: patch (text), stat (per-file counts) or files (changed paths)."""
        return diffs.diff(self._rt, a_id, b_id, mode)

    def visual_diff(self, a_id: str, b_id: str, *, stats_only: bool, size: str = "desktop") -> Any:
        """The two screenshots and their difference as one PNG, or only the figures with `stats_only`."""
        return screens.visual_diff(self._rt, a_id, b_id, stats_only=stats_only, size=size)

    def screenshot(self, version_id: str, size: str) -> bytes:
        """A deployed version's stored screenshot (PNG)."""
        return screens.screenshot(self._rt, version_id, size)

    def source_files(self, v: ProjectVersion) -> list[tuple[str, int]]:
        """The version's source files and sizes (its contract summary), from its commit; [] when it has none."""
        with contextlib.suppress(Exception):  # a row from before sync.names reserved its id has no repo path
            repo = self._rt.repo(v.user_id, v.project_id)
            if repo.has_version(v.version_id):
                return repo.file_sizes(v.version_id)
        return []
