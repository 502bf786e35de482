"""Version routes: history, one version, its build log, diffs, screenshots, pin and unpin."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from daemon.api.docs import ACCEPTED, READ_TOKEN, errors
from daemon.api.guards import check_scope, reader, scoped, signed
from daemon.core import versions
from daemon.core.errors import AppError, PayloadTooLarge
from daemon.core.ids import valid_version_id
from daemon.intake.requests import RepairBody
from daemon.services.buildlogs import BuildLogs
from daemon.services.builds import Builds
from daemon.services.history import HistoryView
from daemon.services.publisher import Publisher


@get("/versions", guards=[reader], summary="Version history, newest first")
async def list_versions(request: Request[Any, Any, Any], history: NamedDependency[HistoryView], userId: FromQuery[str],
                        projectId: FromQuery[str], limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
                        token: READ_TOKEN = None) -> dict[str, Any]:
    """History panel; a project this droplet does not hold is answered from the Postgres replica."""
    check_scope(request, userId, projectId)
    return await asyncio.to_thread(history.history, userId, projectId, limit)


@get("/versions/{version_id:str}", guards=[reader], summary="One version")
async def get_version(request: Request[Any, Any, Any], history: NamedDependency[HistoryView], version_id: FromPath[str],
                      token: READ_TOKEN = None) -> dict[str, Any]:
    try:
        v = await scoped(request, [version_id], versions.get, version_id)
    except AppError as exc:
        remote = None
        if exc.status == 404 and valid_version_id(version_id):
            remote = await asyncio.to_thread(history.remote_version, version_id)
        if remote is None:
            raise
        check_scope(request, remote["userId"], remote["projectId"])
        return remote
    return versions.version_json(v)


@get("/versions/{version_id:str}/log", guards=[reader], summary="A version's build log (text)",
     media_type="text/plain")
async def get_log(request: Request[Any, Any, Any], logs: NamedDependency[BuildLogs], version_id: FromPath[str],
                  token: READ_TOKEN = None) -> Response[bytes]:
    """The whole log, or its last [server] max_log_bytes (X-Log-Truncated then gives the whole size)."""
    data, size = await scoped(request, [version_id], logs.read, version_id)
    headers = {"X-Log-Truncated": str(size)} if len(data) < size else None
    return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


def _too_large(what: str, size: int, cap: int, hint: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} is {size} bytes, over the {cap}-byte answer cap; {hint}", code="answer_too_large",
                           size=size, limit=cap)


@get("/versions/{version_id:str}/diff/{other_id:str}", guards=[reader], summary="Diff two versions of one project",
     responses=errors(409, 413))
async def diff_versions(request: Request[Any, Any, Any], history: NamedDependency[HistoryView],
                        version_id: FromPath[str], other_id: FromPath[str], mode: FromQuery[str] = "patch",
                        token: READ_TOKEN = None) -> Response[Any]:
    """patch (text/x-diff), stat (JSON per-file counts), files (changed paths), visual (PNG) or visual-stats.
    A source diff over [server] max_diff_bytes answers 413 naming mode=stat."""
    ids = [version_id, other_id]
    if mode in ("visual", "visual-stats"):
        out = await scoped(request, ids, history.visual_diff, version_id, other_id, stats_only=mode == "visual-stats")
        cap = 3 * history.max_screenshot_bytes  # two screenshots and the difference, side by side
        if isinstance(out, bytes) and len(out) > cap:
            raise _too_large("the visual diff", len(out), cap, "ask for mode=visual-stats")
        return Response(out) if mode == "visual-stats" else Response(out, media_type="image/png")
    result = await scoped(request, ids, history.diff, version_id, other_id, mode)
    cap = history.max_diff_bytes
    if mode == "patch":
        body = result.encode("utf-8", "replace") if isinstance(result, str) else result
        if len(body) > cap:
            raise _too_large("the patch", len(body), cap, "ask for mode=stat (per-file counts) or mode=files")
        return Response(body, media_type="text/x-diff; charset=utf-8")
    answer = {"files": result} if isinstance(result, list) else result
    size = len(msgspec.json.encode(answer))
    if size > cap:
        raise _too_large(f"the {mode} answer", size, cap, "ask for mode=stat" if mode != "stat" else
                         "compare closer versions")
    return Response(answer)


@get("/versions/{version_id:str}/screenshot", guards=[reader], summary="A deployed version's screenshot (PNG)",
     media_type="image/png", responses=errors(409, 413))
async def get_screenshot(request: Request[Any, Any, Any], history: NamedDependency[HistoryView],
                         version_id: FromPath[str], size: FromQuery[str] = "desktop",
                         token: READ_TOKEN = None) -> Response[bytes]:
    png = await scoped(request, [version_id], history.screenshot, version_id, size)
    if len(png) > history.max_screenshot_bytes:
        raise _too_large("the screenshot", len(png), history.max_screenshot_bytes,
                         "raise [server] max_screenshot_bytes")
    return Response(png, media_type="image/png")


@post("/versions/{version_id:str}/pin", guards=[signed], status_code=200, summary="Pin a version (kept forever)")
async def pin(publisher: NamedDependency[Publisher], version_id: FromPath[str]) -> dict[str, Any]:
    """Cleanup never deletes a pinned version, its artifact or its preview."""
    v = await asyncio.to_thread(publisher.set_pinned, version_id, True)
    return versions.version_json(v)


@post("/versions/{version_id:str}/unpin", guards=[signed], status_code=200, summary="Unpin a version")
async def unpin(publisher: NamedDependency[Publisher], version_id: FromPath[str]) -> dict[str, Any]:
    v = await asyncio.to_thread(publisher.set_pinned, version_id, False)
    return versions.version_json(v)


@post("/versions/{version_id:str}/repair", guards=[signed], status_code=200,
      summary="Run one repair attempt of a failed version", responses={**ACCEPTED, **errors(404, 409, 429)})
async def repair_version(builds: NamedDependency[Builds], version_id: FromPath[str], data: JSONBody[RepairBody],
                         wait: FromQuery[bool] = True) -> Response[Any]:
    """The generator gets the version's ready repair request (`repairRequest`); the attempt is a new version
    (parent = this one, `repairOf`, `repairAttempt`), answered like a build."""
    v = await asyncio.to_thread(builds.repair, version_id, data.userId, data.projectId)
    status, body = await builds.answer(v.version_id, wait)
    return Response(body, status_code=status)


HANDLERS: list[Any] = [list_versions, get_version, get_log, diff_versions, get_screenshot, pin, unpin,
                       repair_version]
