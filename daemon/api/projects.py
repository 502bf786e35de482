"""Project routes: the public preview pointer, undo, redo, and restore from the packs in object storage."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath

from daemon.api.docs import errors
from daemon.api.guards import rt, signed
from daemon.core import pointers, versions
from daemon.core.errors import NotFound
from daemon.core.ids import check_project_ids
from daemon.intake import restore as restoring
from daemon.publish import golive


@get("/projects/{user_id:str}/{project_id:str}/preview", summary="Current preview pointer")
async def preview_pointer(request: Request[Any, Any, Any], user_id: FromPath[str],
                          project_id: FromPath[str]) -> dict[str, Any]:
    """KV first, the database second (the seed's retrieve flow)."""
    runtime = rt(request)
    check_project_ids(user_id, project_id)
    ptr = pointers.read_nowait(runtime.kv, user_id, project_id) \
        or await asyncio.to_thread(pointers.read, runtime.kv, user_id, project_id)
    if ptr is None:
        raise NotFound(f"project {user_id}/{project_id} has no preview", code="project_not_found")
    return ptr


@post("/projects/{user_id:str}/{project_id:str}/undo", guards=[signed], status_code=200, summary="Undo",
      responses=errors(409))
async def undo(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    """Make the previously live version live again, without rebuilding."""
    return await _walk(request, user_id, project_id, "undo")


@post("/projects/{user_id:str}/{project_id:str}/redo", guards=[signed], status_code=200, summary="Redo",
      responses=errors(409))
async def redo(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    """Step forward again after an undo."""
    return await _walk(request, user_id, project_id, "redo")


async def _walk(request: Request[Any, Any, Any], user_id: str, project_id: str, direction: str) -> dict[str, Any]:
    check_project_ids(user_id, project_id)
    v = await asyncio.to_thread(golive.walk, rt(request), user_id, project_id, direction)
    return {"success": True, "versionId": v.version_id, "previewUrl": v.preview_url,
            **versions.navigation(user_id, project_id)}


@post("/projects/{user_id:str}/{project_id:str}/restore", guards=[signed], status_code=200,
      summary="Restore a project's history from the packs in object storage", responses=errors(409, 503))
async def restore(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    return await asyncio.to_thread(restoring.restore, rt(request), user_id, project_id)


HANDLERS: list[Any] = [preview_pointer, undo, redo, restore]
