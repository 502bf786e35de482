"""Project routes: the public preview pointer, undo, redo, and restore from the packs in object storage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath

from daemon.api.docs import errors
from daemon.api.guards import rt, signed
from daemon.build import timeline
from daemon.core.errors import BadRequest, NotFound
from daemon.core.ids import valid_id
from daemon.runtime import Runtime


@get("/projects/{user_id:str}/{project_id:str}/preview", summary="Current preview pointer")
async def preview_pointer(request: Request[Any, Any, Any], user_id: FromPath[str],
                          project_id: FromPath[str]) -> dict[str, Any]:
    """KV first, the database second (the seed's retrieve flow)."""
    runtime = rt(request)
    for name, value in (("userId", user_id), ("projectId", project_id)):
        if not valid_id(value):
            raise BadRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -", code="invalid_field", field=name)
    ptr = runtime.pointer_nowait(user_id, project_id) or await asyncio.to_thread(runtime.pointer, user_id, project_id)
    if ptr is None:
        raise NotFound(f"project {user_id}/{project_id} has no preview", code="project_not_found")
    return ptr


@post("/projects/{user_id:str}/{project_id:str}/undo", guards=[signed], status_code=200, summary="Undo",
      responses=errors(409))
async def undo(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    """Make the previously live version live again, without rebuilding."""
    return await _walk(request, user_id, project_id, timeline.undo)


@post("/projects/{user_id:str}/{project_id:str}/redo", guards=[signed], status_code=200, summary="Redo",
      responses=errors(409))
async def redo(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    """Step forward again after an undo."""
    return await _walk(request, user_id, project_id, timeline.redo)


async def _walk(request: Request[Any, Any, Any], user_id: str, project_id: str,
                step: Callable[[Runtime, Any, Any], Any]) -> dict[str, Any]:
    v = await asyncio.to_thread(step, rt(request), user_id, project_id)
    return {"success": True, "versionId": v.version_id, "previewUrl": v.preview_url,
            **timeline.navigation(user_id, project_id)}


@post("/projects/{user_id:str}/{project_id:str}/restore", guards=[signed], status_code=200,
      summary="Restore a project's history from the packs in object storage", responses=errors(409, 503))
async def restore(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    return await asyncio.to_thread(timeline.restore, rt(request), user_id, project_id)


HANDLERS: list[Any] = [preview_pointer, undo, redo, restore]
