"""Project routes: the public preview pointer, undo, redo, and restore from the packs in object storage."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from daemon.api.docs import errors
from daemon.api.guards import signed
from daemon.core import versions
from daemon.core.errors import NotFound
from daemon.core.ids import check_project_ids
from daemon.services.operations import Operations
from daemon.services.publisher import Publisher


@get("/projects/{user_id:str}/{project_id:str}/preview", summary="Current preview pointer")
async def preview_pointer(publisher: NamedDependency[Publisher], user_id: FromPath[str],
                          project_id: FromPath[str]) -> dict[str, Any]:
    """KV first, the database second (the seed's retrieve flow)."""
    check_project_ids(user_id, project_id)
    ptr = publisher.pointer_nowait(user_id, project_id) \
        or await asyncio.to_thread(publisher.pointer, user_id, project_id)
    if ptr is None:
        raise NotFound(f"project {user_id}/{project_id} has no preview", code="project_not_found")
    return ptr


@post("/projects/{user_id:str}/{project_id:str}/undo", guards=[signed], status_code=200, summary="Undo",
      responses=errors(409))
async def undo(publisher: NamedDependency[Publisher], user_id: FromPath[str],
               project_id: FromPath[str]) -> dict[str, Any]:
    """Make the previously live version live again, without rebuilding."""
    return await _walk(publisher, user_id, project_id, "undo")


@post("/projects/{user_id:str}/{project_id:str}/redo", guards=[signed], status_code=200, summary="Redo",
      responses=errors(409))
async def redo(publisher: NamedDependency[Publisher], user_id: FromPath[str],
               project_id: FromPath[str]) -> dict[str, Any]:
    """Step forward again after an undo."""
    return await _walk(publisher, user_id, project_id, "redo")


async def _walk(publisher: Publisher, user_id: str, project_id: str, direction: str) -> dict[str, Any]:
    check_project_ids(user_id, project_id)
    v = await asyncio.to_thread(publisher.walk, user_id, project_id, direction)
    return {"success": True, "versionId": v.version_id, "previewUrl": v.preview_url,
            **versions.navigation(user_id, project_id)}


@post("/projects/{user_id:str}/{project_id:str}/restore", guards=[signed], status_code=200,
      summary="Restore a project's history from the packs in object storage", responses=errors(409, 503))
async def restore(operations: NamedDependency[Operations], user_id: FromPath[str],
                  project_id: FromPath[str]) -> dict[str, Any]:
    return await asyncio.to_thread(operations.restore, user_id, project_id)


HANDLERS: list[Any] = [preview_pointer, undo, redo, restore]
