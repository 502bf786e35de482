"""What the dashboard's pages read: the overview's figures, the project list, a timeline with its branches."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daemon.core import versions
from daemon.core.db import Project, ProjectVersion, database
from daemon.ops import buildstats
from daemon.services.operations import Operations

PAGE_SIZE = 50
TIMELINE_SIZE = 50
# The 7-day figures read every finished build of the week (10,000 rows cost ~12 ms, more under load): kept until a
# build finishes (the builds counter moves) or WEEK_CACHE_S pass (the window slides; a rollback or cleanup lands).
WEEK_CACHE_S = 60.0
_week: weakref.WeakKeyDictionary[Operations, tuple[float, float, buildstats.WindowStats]] = \
    weakref.WeakKeyDictionary()
_week_lock = threading.Lock()


def _window(ops: Operations, hours: int, builds_done: float) -> buildstats.WindowStats:
    """The window's figures: the last 24 h computed afresh, the 7 days from the short cache above."""
    if hours <= 48:
        return buildstats.window_stats(hours)
    now = time.monotonic()
    with _week_lock:
        hit = _week.get(ops)
    if hit is not None and hit[0] == builds_done and now - hit[1] < WEEK_CACHE_S:
        return hit[2]
    stats = buildstats.window_stats(hours)
    with _week_lock:
        _week[ops] = (builds_done, now, stats)
    return stats


def overview(ops: Operations, window: str) -> dict[str, Any]:
    """The overview's figures: the /metrics gauges (refreshed by the same code), the status report, the alerts
    firing, and the window's build analytics."""
    gauges = ops.gauges()

    def one(name: str) -> float:
        samples = gauges.get(name) or [({}, 0.0)]
        return samples[0][1]

    def by(name: str, label: str) -> dict[str, float]:
        return {labels.get(label, ""): value for labels, value in gauges.get(name, [])}

    hours = buildstats.WINDOWS.get(window, 24)
    since_start = by("previewd_builds_total", "status")
    return {
        "window": window if window in buildstats.WINDOWS else "24h",
        "stats": _window(ops, hours, sum(since_start.values())),
        "queue_depth": int(one("previewd_queue_depth")),
        "running": int(one("previewd_builds_running")),
        "sync_backlog": by("previewd_sync_backlog", "destination"),
        "sync_dead": by("previewd_sync_dead", "destination"),
        "sync_lag": by("previewd_sync_lag_seconds", "destination"),
        "pages_month": int(one("previewd_pages_deployments_month")),
        "pages_quota": int(one("previewd_pages_deployments_quota")),
        "disk": by("previewd_disk_used_bytes", "area"),
        "since_start": since_start,
        "status": ops.status(),
        "health": ops.health_detail(),
    }


@dataclass
class ProjectRow:
    """One line of the project list."""

    user_id: str
    project_id: str
    builds: int
    failed: int
    last: ProjectVersion | None = None
    live_version_id: str | None = None
    live: ProjectVersion | None = None  # the live version's row (its title, status and screenshot)

    @property
    def failure_share(self) -> float:
        return self.failed / self.builds if self.builds else 0.0


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def projects(search: str, page: int) -> tuple[list[ProjectRow], bool]:
    """Projects whose user or project id contains `search`, most recently built first; and whether more follow.

    One grouped pass over the (user_id, project_id, status, version_id) index, then the page's last versions and
    live pointers by key.
    """
    where, args = "", []
    if search:
        where = "WHERE user_id LIKE ? ESCAPE '\\' OR project_id LIKE ? ESCAPE '\\'"
        args = [_like(search), _like(search)]
    rows = database.execute_sql(
        "SELECT user_id, project_id, COUNT(*), SUM(status = 'failed'), MAX(version_id) AS last_id "
        f"FROM project_versions {where} GROUP BY user_id, project_id ORDER BY last_id DESC LIMIT ? OFFSET ?",
        (*args, PAGE_SIZE + 1, page * PAGE_SIZE)).fetchall()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    out = [ProjectRow(str(u), str(p), int(n), int(f or 0)) for u, p, n, f, _ in rows]
    if rows:
        lasts = {v.version_id: v for v in ProjectVersion.select().where(
            ProjectVersion.version_id.in_([r[4] for r in rows]))}
        keys = {(str(r[0]), str(r[1])) for r in rows}
        live = {(p.user_id, p.project_id): p.live_version_id for p in Project.select(
            Project.user_id, Project.project_id, Project.live_version_id).where(
            Project.user_id.in_(list({r[0] for r in rows})))}
        live_ids = [vid for key, vid in live.items() if vid and key in keys]  # the page's, not every user's
        live_rows = {v.version_id: v for v in ProjectVersion.select(  # what the column shows: title and id
            ProjectVersion.version_id, ProjectVersion.prompt, ProjectVersion.kind, ProjectVersion.rollback_of,
            ProjectVersion.status).where(ProjectVersion.version_id.in_(live_ids))} if live_ids else {}
        for row, raw in zip(out, rows, strict=True):
            row.last = lasts.get(raw[4])
            row.live_version_id = live.get((row.user_id, row.project_id))
            row.live = live_rows.get(row.live_version_id or "")
    return out, more


@dataclass
class Timeline:
    """A project's newest versions, who is live, what undo/redo reach, and the lanes of the branch view."""

    user_id: str
    project_id: str
    items: list[ProjectVersion]
    navigation: dict[str, Any]
    lanes: dict[str, int] = field(default_factory=dict)
    lane_count: int = 1
    forks: set[str] = field(default_factory=set)
    older: str | None = None
    live: ProjectVersion | None = None  # the production card's version
    live_since: Any = None  # when the live pointer last moved (the project row's updated_at)


def branch_lanes(items: list[ProjectVersion]) -> tuple[dict[str, int], int, set[str]]:
    """Lane of each version, oldest first: a version continues its parent's lane when it is that lane's tip,
    else it forks a new lane (built from an older base). A parent older than the page starts a lane without a
    fork mark. Returns (lanes, lane count, forking version ids)."""
    lanes: dict[str, int] = {}
    tips: list[str] = []
    shown = {v.version_id for v in items}
    forks: set[str] = set()
    for v in sorted(items, key=lambda x: x.version_id):
        parent = v.parent_version_id if v.parent_version_id in shown else None
        if parent is not None and parent in tips:
            lane = tips.index(parent)
        elif parent is None and not tips:
            lane = 0
            tips.append("")
        else:
            lane = len(tips)
            tips.append("")
            if parent is not None:
                forks.add(v.version_id)
        tips[lane] = v.version_id
        lanes[v.version_id] = lane
    return lanes, max(len(tips), 1), forks


def timeline(user_id: str, project_id: str, before: str | None = None) -> Timeline:
    """The project page's data: a page of versions older than `before` (newest first), and one more row to know
    whether an older page exists."""
    items = versions.history(user_id, project_id, limit=TIMELINE_SIZE + 1, before=before)
    t = Timeline(user_id, project_id, items[:TIMELINE_SIZE], versions.navigation(user_id, project_id))
    t.older = items[TIMELINE_SIZE - 1].version_id if len(items) > TIMELINE_SIZE else None
    items = t.items
    t.lanes, t.lane_count, t.forks = branch_lanes(items)
    live_id = t.navigation.get("liveVersionId")
    if live_id:
        t.live = next((v for v in items if v.version_id == live_id), None) or \
            ProjectVersion.get_or_none(ProjectVersion.version_id == live_id)
        proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
        t.live_since = proj.updated_at if proj is not None else None
    return t


def one(version_id: str | None) -> ProjectVersion | None:
    """A version row by id, or None (a version deleted by cleanup, or no id)."""
    return ProjectVersion.get_or_none(ProjectVersion.version_id == version_id) if version_id else None


BUILDS_PAGE = 50


def builds(since: datetime, until: datetime, status: str | None, reason: str | None,
           before: str | None = None, limit: int = BUILDS_PAGE) -> tuple[list[ProjectVersion], str | None]:
    """The finished builds a chart counts: created in [since, until), of one status and failure reason when given,
    newest first, a page of `limit` (and the id to pass as `before` for the next page). Rollbacks count as
    builds here as in the charts; the timings leave them out."""
    q = ProjectVersion.select().where((ProjectVersion.created_at >= since) & (ProjectVersion.created_at < until)
                                      & ProjectVersion.status.in_(("deployed", "failed")))
    if status:
        q = q.where(ProjectVersion.status == status)
    if reason:
        q = q.where(ProjectVersion.failure_reason == reason) if reason != "unknown" else \
            q.where(ProjectVersion.failure_reason.is_null())
    if before:
        q = q.where(ProjectVersion.version_id < before)
    # The created_at index's own order (a second sort key would sort the whole window first).
    rows = list(q.order_by(ProjectVersion.created_at.desc()).limit(limit + 1))
    more = rows[limit - 1].version_id if len(rows) > limit else None
    return rows[:limit], more
