"""Version routes: history, one version, its build log, diffs, screenshots, pin and unpin."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, QueryParameter

from daemon.api.docs import READ_TOKEN, errors
from daemon.api.guards import check_scope, reader, rt, scoped, signed
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import AppError, PayloadTooLarge
from daemon.core.ids import valid_version_id
from daemon.fleet import droplet
from daemon.ops import replication as syncops
from daemon.publish import diffs, screens
from daemon.runtime import Runtime


@get("/versions", guards=[reader], summary="Version history, newest first")
async def list_versions(request: Request[Any, Any, Any], userId: FromQuery[str], projectId: FromQuery[str],
                        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
                        token: READ_TOKEN = None) -> dict[str, Any]:
    """History panel; a project this droplet does not hold is answered from the Postgres replica."""
    check_scope(request, userId, projectId)
    items = await asyncio.to_thread(versions.history_json, userId, projectId, limit)
    if not items:
        items = (await asyncio.to_thread(syncops.remote_history, rt(request).replica, userId, projectId))[:limit]
    alias = droplet.live_alias_url(rt(request), userId, projectId)
    return {"versions": items, **({"liveUrl": alias} if alias else {})}


@get("/versions/{version_id:str}", guards=[reader], summary="One version")
async def get_version(request: Request[Any, Any, Any], version_id: FromPath[str],
                      token: READ_TOKEN = None) -> dict[str, Any]:
    try:
        v = await scoped(request, [version_id], versions.get, version_id)
    except AppError as exc:
        remote = None
        if exc.status == 404 and valid_version_id(version_id):
            remote = await asyncio.to_thread(syncops.remote_version, rt(request).replica, version_id)
        if remote is None:
            raise
        check_scope(request, remote["userId"], remote["projectId"])
        return remote
    return versions.version_json(v)


def read_log(path: Path, cap: int) -> tuple[bytes, int]:
    """A build log's bytes, or its last `cap` bytes (from a line start) when longer; and the whole size."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= cap:
                return fh.read(cap), size
            fh.seek(size - cap)
            data = fh.read(cap)
    except FileNotFoundError:
        return b"", 0
    cut = data.find(b"\n")
    return (data[cut + 1:] if 0 <= cut < len(data) - 1 else data), size


@get("/versions/{version_id:str}/log", guards=[reader], summary="A version's build log (text)",
     media_type="text/plain")
async def get_log(request: Request[Any, Any, Any], version_id: FromPath[str],
                  token: READ_TOKEN = None) -> Response[bytes]:
    """The whole log, or its last [server] max_log_bytes (X-Log-Truncated then gives the whole size)."""
    runtime = rt(request)

    def load() -> tuple[bytes, int]:
        versions.get(version_id)  # 404 for an unknown version
        return read_log(runtime.layout.log_path(version_id), runtime.cfg.server.max_log_bytes)

    data, size = await scoped(request, [version_id], load)
    headers = {"X-Log-Truncated": str(size)} if len(data) < size else None
    return Response(data, media_type="text/plain; charset=utf-8", headers=headers)


def _too_large(what: str, size: int, cap: int, hint: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what} is {size} bytes, over the {cap}-byte answer cap; {hint}", code="answer_too_large",
                           size=size, limit=cap)


@get("/versions/{version_id:str}/diff/{other_id:str}", guards=[reader], summary="Diff two versions of one project",
     responses=errors(409, 413))
async def diff_versions(request: Request[Any, Any, Any], version_id: FromPath[str], other_id: FromPath[str],
                        mode: FromQuery[str] = "patch", token: READ_TOKEN = None) -> Response[Any]:
    """patch (text/x-diff), stat (JSON per-file counts), files (changed paths), visual (PNG) or visual-stats.
    A source diff over [server] max_diff_bytes answers 413 naming mode=stat."""
    runtime = rt(request)
    ids = [version_id, other_id]
    if mode in ("visual", "visual-stats"):
        out = await scoped(request, ids, screens.visual_diff, runtime, version_id, other_id,
                           stats_only=mode == "visual-stats")
        cap = 3 * runtime.cfg.server.max_screenshot_bytes  # two screenshots and the difference, side by side
        if isinstance(out, bytes) and len(out) > cap:
            raise _too_large("the visual diff", len(out), cap, "ask for mode=visual-stats")
        return Response(out) if mode == "visual-stats" else Response(out, media_type="image/png")
    result = await scoped(request, ids, diffs.diff, runtime, version_id, other_id, mode)
    cap = runtime.cfg.server.max_diff_bytes
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
async def get_screenshot(request: Request[Any, Any, Any], version_id: FromPath[str],
                         size: FromQuery[str] = "desktop", token: READ_TOKEN = None) -> Response[bytes]:
    runtime = rt(request)
    png = await scoped(request, [version_id], screens.screenshot, runtime, version_id, size)
    if len(png) > runtime.cfg.server.max_screenshot_bytes:
        raise _too_large("the screenshot", len(png), runtime.cfg.server.max_screenshot_bytes,
                         "raise [server] max_screenshot_bytes")
    return Response(png, media_type="image/png")


def set_pinned(runtime: Runtime, version_id: str, pinned: bool) -> ProjectVersion:
    """Pin or unpin a version (404 unknown); a no-op when it already is, so the row version does not move."""
    v = versions.get(version_id)
    if bool(v.pinned) == pinned:
        return v
    droplet.admit(runtime, v.user_id, v.project_id)
    return versions.update(runtime.outbox, version_id, pinned=pinned)


@post("/versions/{version_id:str}/pin", guards=[signed], status_code=200, summary="Pin a version (kept forever)")
async def pin(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    """Cleanup never deletes a pinned version, its artifact or its preview."""
    v = await asyncio.to_thread(set_pinned, rt(request), version_id, True)
    return versions.version_json(v)


@post("/versions/{version_id:str}/unpin", guards=[signed], status_code=200, summary="Unpin a version")
async def unpin(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    v = await asyncio.to_thread(set_pinned, rt(request), version_id, False)
    return versions.version_json(v)


HANDLERS: list[Any] = [list_versions, get_version, get_log, diff_versions, get_screenshot, pin, unpin]
