"""Version routes: history, one version, its build log, diffs, screenshots, pin and unpin."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter

from daemon.api.docs import errors
from daemon.api.guards import rt, signed
from daemon.build import screens, service, timeline
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import AppError
from daemon.core.ids import valid_version_id
from daemon.ops import replication as syncops
from daemon.runtime import Runtime


@get("/versions", summary="Version history, newest first")
async def list_versions(request: Request[Any, Any, Any], userId: FromQuery[str], projectId: FromQuery[str],
                        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """History panel; a project this droplet does not hold is answered from the Postgres replica."""
    items = await asyncio.to_thread(service.history, userId, projectId, limit)
    if not items:
        items = (await asyncio.to_thread(syncops.remote_history, rt(request), userId, projectId))[:limit]
    return {"versions": items}


@get("/versions/{version_id:str}", summary="One version")
async def get_version(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    try:
        v = await asyncio.to_thread(service.get_version, version_id)
    except AppError as exc:
        remote = None
        if exc.status == 404 and valid_version_id(version_id):
            remote = await asyncio.to_thread(syncops.remote_version, rt(request), version_id)
        if remote is None:
            raise
        return remote
    return service.version_json(v)


@get("/versions/{version_id:str}/log", summary="A version's build log (text)", media_type="text/plain")
async def get_log(request: Request[Any, Any, Any], version_id: FromPath[str]) -> Response[bytes]:
    runtime = rt(request)
    await asyncio.to_thread(service.get_version, version_id)
    path = runtime.log_path(version_id)
    data = await asyncio.to_thread(lambda: path.read_bytes() if path.exists() else b"")
    return Response(data, media_type="text/plain; charset=utf-8")


@get("/versions/{version_id:str}/diff/{other_id:str}", summary="Diff two versions of one project",
     responses=errors(409))
async def diff_versions(request: Request[Any, Any, Any], version_id: FromPath[str], other_id: FromPath[str],
                        mode: FromQuery[str] = "patch") -> Response[Any]:
    """patch (text/x-diff), stat (JSON per-file counts), files (changed paths), visual (PNG) or visual-stats."""
    runtime = rt(request)
    if mode in ("visual", "visual-stats"):
        out = await asyncio.to_thread(screens.visual_diff, runtime, version_id, other_id,
                                      stats_only=mode == "visual-stats")
        return Response(out) if mode == "visual-stats" else Response(out, media_type="image/png")
    result = await asyncio.to_thread(timeline.diff, runtime, version_id, other_id, mode)
    if mode == "patch":
        return Response(result.encode("utf-8", "replace") if isinstance(result, str) else result,
                        media_type="text/x-diff; charset=utf-8")
    return Response({"files": result} if isinstance(result, list) else result)


@get("/versions/{version_id:str}/screenshot", summary="A deployed version's screenshot (PNG)",
     media_type="image/png", responses=errors(409))
async def get_screenshot(request: Request[Any, Any, Any], version_id: FromPath[str],
                         size: FromQuery[str] = "desktop") -> Response[bytes]:
    png = await asyncio.to_thread(screens.screenshot, rt(request), version_id, size)
    return Response(png, media_type="image/png")


def set_pinned(runtime: Runtime, version_id: str, pinned: bool) -> ProjectVersion:
    """Pin or unpin a version (404 unknown); a no-op when it already is, so the row version does not move."""
    v = service.get_version(version_id)
    if bool(v.pinned) == pinned:
        return v
    return versions.update(runtime.outbox, version_id, pinned=pinned)


@post("/versions/{version_id:str}/pin", guards=[signed], status_code=200, summary="Pin a version (kept forever)")
async def pin(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    """Cleanup never deletes a pinned version, its artifact or its preview."""
    v = await asyncio.to_thread(set_pinned, rt(request), version_id, True)
    return service.version_json(v)


@post("/versions/{version_id:str}/unpin", guards=[signed], status_code=200, summary="Unpin a version")
async def unpin(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    v = await asyncio.to_thread(set_pinned, rt(request), version_id, False)
    return service.version_json(v)


HANDLERS: list[Any] = [list_versions, get_version, get_log, diff_versions, get_screenshot, pin, unpin]
