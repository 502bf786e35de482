"""The dashboard's pages: overview, projects, project timeline, version, diff; and the images they show."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, ServerSentEvent, Template

from daemon.core import logtext, versions
from daemon.core.db import utcnow
from daemon.core.errors import AppError, BadRequest
from daemon.core.ids import check_project_ids, valid_version_id
from daemon.ops import buildstats
from daemon.publish import screens
from daemon.services.access import client_ip
from daemon.services.buildlogs import CAUSE_TAIL_BYTES, BuildLogs
from daemon.services.history import HistoryView
from daemon.services.operations import Operations
from daemon.ui import charts, logview, patchview, present, queries, thumbs
from daemon.ui.access import signed_in

GUARDS = [signed_in]
SIZES = screens.SIZES
RECENT_FAILURES = 5  # the overview's latest failed builds, each with its cause


@get("/", guards=GUARDS, name="ui-overview")
async def overview(operations: NamedDependency[Operations], logs: NamedDependency[BuildLogs],
                   window: FromQuery[str] = "24h") -> Template:
    """Builds per hour and failure reasons, the latest failures with their causes, timings, queue, sync, quota,
    disk and alerts."""

    def load() -> dict[str, Any]:
        data = queries.overview(operations, window)
        hours = buildstats.WINDOWS.get(data["window"], 24)
        now = utcnow()
        recent, _ = queries.builds(now - timedelta(hours=hours), now + timedelta(minutes=1), "failed", None,
                                   limit=RECENT_FAILURES)
        data["recent_failures"] = [(v, logs.cause(v)) for v in recent]
        return data

    data = await asyncio.to_thread(load)
    stats = data["stats"]
    label = "last 24 hours" if data["window"] == "24h" else "last 7 days"
    title = f"Builds per {'hour' if data['window'] == '24h' else '6 hours'}, {label}: succeeded and failed"
    # Two drawings of one chart: SVG text scales with the picture, so a phone gets one drawn for its width.
    ago = "24 h ago" if data["window"] == "24h" else "7 days ago"
    win = data["window"]
    step_h = 1 if win == "24h" else 6

    def hour_link(start: Any) -> str:
        return f"/ui/builds?at={start:%Y-%m-%dT%H:%M}&hours={step_h}"

    data["builds_chart"] = charts.builds_bars(stats.buckets, title=title, start_label=ago, link=hour_link) + \
        charts.builds_bars(stats.buckets, title=title, width=360, height=180, narrow=True, start_label=ago,
                           link=hour_link)
    data["reasons_chart"] = charts.reason_bars(
        stats.by_reason, total=stats.failed, title=f"Failures by reason, {label}",
        link=lambda reason: f"/ui/builds?window={win}&status=failed&reason={quote(reason)}")
    data["window_label"] = label
    return Template("overview.html", context={"page": "overview", **data})


@get("/projects", guards=GUARDS, name="ui-projects")
async def projects(logs: NamedDependency[BuildLogs], q: FromQuery[str] = "",
                   page: Annotated[int, QueryParameter(ge=0, le=10_000)] = 0) -> Template:
    """Projects by user or project id, most recently built first: the live site, and the last build beside it
    (a failed one with its one-line cause)."""
    q = q.strip()[:64]

    def load() -> tuple[list[queries.ProjectRow], bool, dict[str, str]]:
        rows, more = queries.projects(q, page)
        return rows, more, {r.last.version_id: logs.cause(r.last) for r in rows
                            if r.last is not None and r.last.status == "failed"}

    rows, more, causes = await asyncio.to_thread(load)
    return Template("projects.html", context={"page": "projects", "rows": rows, "q": q, "page_no": page,
                                              "more": more, "causes": causes})


@get("/projects/{user_id:str}/{project_id:str}", guards=GUARDS, name="ui-project")
async def project(logs: NamedDependency[BuildLogs], history: NamedDependency[HistoryView], user_id: FromPath[str],
                  project_id: FromPath[str], before: FromQuery[str] = "", done: FromQuery[str] = "",
                  v: FromQuery[str] = "") -> Template:
    """The production card (what is live, since when, where), then the timeline of a project's versions, newest
    first, with its branch lanes, actions and each failure's cause; after an action, a message naming the version
    live now."""
    check_project_ids(user_id, project_id)
    if before and not valid_version_id(before):
        raise BadRequest("before must be a version id", code="invalid_field", field="before")

    def load() -> dict[str, Any]:
        t = queries.timeline(user_id, project_id, before or None)
        causes = {x.version_id: logs.cause(x) for x in t.items if x.status == "failed"}
        latest = t.items[0] if t.items and not before else None
        subject = queries.one(v) if done and valid_version_id(v) else None
        return {"t": t, "causes": causes, "latest": latest, "live_url": history.live_url(user_id, project_id),
                "latest_cause": logs.cause(latest) if latest is not None else "",
                "flash": present.flash(done, subject, t.live) if done else None}

    ctx = await asyncio.to_thread(load)
    return Template("project.html", context={"page": "projects", "before": before, **ctx})


@get("/versions/{version_id:str}", guards=GUARDS, name="ui-version")
async def version(logs: NamedDependency[BuildLogs], history: NamedDependency[HistoryView],
                  version_id: FromPath[str], done: FromQuery[str] = "") -> Template:
    """One version: its log (live while it builds), contract summary, audit, toolchain, artifact and preview."""

    def load() -> dict[str, Any]:
        v = versions.get(version_id)
        data, size = logs.read(version_id)
        log = logview.log_view(data, size)
        files = history.source_files(v)
        tail = data[-CAUSE_TAIL_BYTES:].decode("utf-8", "replace")  # the timeline's cause reads the same tail
        cause = logtext.cause(v.failure_reason, v.failure_message, tail) if v.status == "failed" else ""
        live_id = versions.navigation(v.user_id, v.project_id)["liveVersionId"]
        live_v = v if live_id == v.version_id else queries.one(live_id)
        phase = logs.phase(version_id)
        j = versions.version_json(v)
        render_pending = v.status == "deployed" and not v.render_status and history.renders
        return {"v": v, "j": j, "log": log, "log_size": size, "cause": cause,
                "rollback_note": logview.rollback_note(v), "files": files, "files_bytes": sum(n for _, n in files),
                "live": live_id, "live_v": live_v, "phase": phase,
                "steps": present.progress(v, j.get("timings"), phase, bool(render_pending)),
                "step_since": present.started_at(v, phase),
                "shown_status": "building" if v.status == "queued" and phase is not None else v.status,
                "flash": present.flash(done, v, live_v) if done else None}

    ctx = await asyncio.to_thread(load)
    ctx["following"] = ctx["v"].status in ("queued", "building")
    return Template("version.html", context={"page": "projects", **ctx})


@get("/versions/{version_id:str}/log-stream", guards=GUARDS, name="ui-log-stream",
     media_type="text/event-stream")
async def version_log_stream(request: Request[Any, Any, Any], logs: NamedDependency[BuildLogs],
                             version_id: FromPath[str]) -> ServerSentEvent:
    """The API's log stream (same service, same caps) for the signed-in operator's EventSource, its lines without
    terminal escape sequences, and a `step` event each time the build enters a new phase."""
    await asyncio.to_thread(versions.get, version_id)
    return ServerSentEvent(logview.readable(logs.stream(version_id, client_ip(request),
                                                        request.headers.get("last-event-id", "")),
                                            phase=lambda: logs.phase(version_id)))


@get("/diff/{a_id:str}/{b_id:str}", guards=GUARDS, name="ui-diff")
async def diff(history: NamedDependency[HistoryView], a_id: FromPath[str], b_id: FromPath[str]) -> Template:
    """Source patch side by side with per-file counts, and the visual diff per screen size."""

    def load() -> dict[str, Any]:
        a, b = versions.get(a_id), versions.get(b_id)
        ctx: dict[str, Any] = {"a": a, "b": b, "stat": None, "files": [], "patch_error": None, "visual": {}}
        try:
            ctx["stat"] = history.diff(a_id, b_id, "stat")
            patch = history.diff(a_id, b_id, "patch")
            if len(patch.encode("utf-8", "replace")) > history.max_diff_bytes:
                ctx["patch_error"] = "the patch is larger than [server] max_diff_bytes; the counts above are whole"
            else:
                ctx["files"] = patchview.side_by_side(patch)
        except AppError as exc:
            ctx["patch_error"] = exc.message
        for size in SIZES:
            try:
                ctx["visual"][size] = history.visual_diff(a_id, b_id, stats_only=True, size=size)
            except AppError as exc:
                ctx["visual"][size] = {"error": exc.message}
        return ctx

    ctx = await asyncio.to_thread(load)
    return Template("diff.html", context={"page": "projects", **ctx})


@get("/builds", guards=GUARDS, name="ui-builds")
async def builds(logs: NamedDependency[BuildLogs], window: FromQuery[str] = "", at: FromQuery[str] = "",
                 hours: Annotated[int, QueryParameter(ge=1, le=168)] = 1, status: FromQuery[str] = "",
                 reason: FromQuery[str] = "", before: FromQuery[str] = "") -> Template:
    """The finished builds a chart counts: a bar of builds per hour (`at` + `hours`) or a failure reason over a
    window, newest first, each with its title, status and cause."""
    if status not in ("", "deployed", "failed"):
        raise BadRequest("status must be deployed or failed", code="invalid_field", field="status")
    if before and not valid_version_id(before):
        raise BadRequest("before must be a version id", code="invalid_field", field="before")
    reason = reason.strip()[:64]
    if at:
        try:
            since = datetime.fromisoformat(at)
        except ValueError:
            raise BadRequest("at must be a time like 2026-12-07T10:00 (UTC)", code="invalid_field",
                             field="at") from None
        since = since.replace(tzinfo=None)
        until = since + timedelta(hours=hours)
        span = f"{since:%Y-%m-%d %H:%M} to {until:%H:%M} UTC"
    else:
        until = utcnow()
        since = until - timedelta(hours=buildstats.WINDOWS.get(window, 24))
        span = "the last 7 days" if window == "7d" else "the last 24 hours"

    def load() -> tuple[list[Any], str | None, dict[str, str]]:
        rows, more = queries.builds(since, until, status or None, reason or None, before or None)
        return rows, more, {x.version_id: logs.cause(x) for x in rows if x.status == "failed"}

    rows, more, causes = await asyncio.to_thread(load)
    what = ("Failed builds" if status == "failed" else "Deployed builds" if status == "deployed" else "Builds") + \
        (f" ({reason})" if reason else "")
    here = f"/ui/builds?window={quote(window)}&at={quote(at)}&hours={hours}&status={status}&reason={quote(reason)}"
    return Template("builds.html", context={"page": "overview", "rows": rows, "more": more, "causes": causes,
                                            "what": what, "span": span, "here": here, "before": before})


@get("/compare", guards=GUARDS, name="ui-compare")
async def compare(a: FromQuery[str], b: FromQuery[str]) -> Redirect:
    """The project page's compare form lands here; the diff page has the two ids in its path."""
    for vid in (a, b):
        if not valid_version_id(vid):
            raise BadRequest("pick two versions to compare", code="invalid_field", field="a" if vid == a else "b")
    return Redirect(f"/ui/diff/{a}/{b}", status_code=303)


@get("/shot/{version_id:str}/{size:str}", guards=GUARDS, name="ui-shot", media_type="image/png")
async def shot(history: NamedDependency[HistoryView], version_id: FromPath[str],
               size: FromPath[str]) -> Response[bytes]:
    """A version's stored screenshot (the API's reader)."""
    png = await asyncio.to_thread(history.screenshot, version_id, size)
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=3600"})


@get("/thumb/{version_id:str}", guards=GUARDS, name="ui-thumb", media_type="image/jpeg")
async def thumb(history: NamedDependency[HistoryView], version_id: FromPath[str],
                size: FromQuery[str] = "small") -> Response[bytes]:
    """The timeline's small picture of a version (a few KB instead of the whole screenshot); `size=large`: the
    production card's."""
    jpeg = await asyncio.to_thread(thumbs.thumbnail, history, version_id, thumbs.LARGE if size == "large" else 1)
    return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "private, max-age=86400"})


@get("/diff/{a_id:str}/{b_id:str}/overlay/{size:str}", guards=GUARDS, name="ui-overlay", media_type="image/png")
async def overlay(history: NamedDependency[HistoryView], a_id: FromPath[str], b_id: FromPath[str],
                  size: FromPath[str]) -> Response[bytes]:
    """The visual diff image (A | B | changes), the page shows its third panel as the overlay."""
    if size not in SIZES:
        raise BadRequest(f"size must be one of {', '.join(SIZES)}", code="invalid_field", field="size")
    png = await asyncio.to_thread(history.visual_diff, a_id, b_id, stats_only=False, size=size)
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=3600"})


HANDLERS: list[Any] = [overview, projects, project, version, version_log_stream, diff, builds, compare, shot, thumb,
                       overlay]
