"""Build routes: new project, rebuild, generate, rollback, and a build's live log as server-sent events."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import ServerSentEvent

from daemon.api.docs import ACCEPTED, READ_TOKEN, errors
from daemon.api.guards import reader, scoped, signed
from daemon.core import versions
from daemon.intake.requests import GenerateBody, NewProjectBody, ProjectRef, RebuildBody
from daemon.services.access import client_ip
from daemon.services.buildlogs import BuildLogs
from daemon.services.builds import Builds
from daemon.services.publisher import Publisher


async def _answer_build(builds: Builds, version_id: str, wait: bool) -> Response[Any]:
    status, body = await builds.answer(version_id, wait)
    return Response(body, status_code=status)


# The seed's three routes accept its body-only signature too (see guards.signed): their body names the operation.
SEED_ROUTE = {"body_only_signature": True}


@post("/build-preview-for-new-project", guards=[signed], opt=SEED_ROUTE, status_code=200,
      summary="Build a new project", responses={**ACCEPTED, **errors(409)})
async def build_new(builds: NamedDependency[Builds], data: JSONBody[NewProjectBody],
                    wait: FromQuery[bool] = True) -> Response[Any]:
    """Scaffold, build and deploy a new project; waits for the build unless wait=false."""
    builds.check_prompt(data.prompt)
    v = await asyncio.to_thread(builds.new, data)
    return await _answer_build(builds, v.version_id, wait)


@post("/rebuild-preview", guards=[signed], opt=SEED_ROUTE, status_code=200, summary="Rebuild an existing project",
      responses={**ACCEPTED, **errors(404, 409)})
async def rebuild(builds: NamedDependency[Builds], data: JSONBody[RebuildBody],
                  wait: FromQuery[bool] = True) -> Response[Any]:
    """Refine a project from its base version (default: the latest deployed)."""
    builds.check_prompt(data.prompt)
    v = await asyncio.to_thread(builds.rebuild, data)
    return await _answer_build(builds, v.version_id, wait)


@post("/generate", guards=[signed], opt=SEED_ROUTE, status_code=200,
      summary="Generate a project (the contract JSON)", responses=errors(503))
async def generate(builds: NamedDependency[Builds], data: JSONBody[GenerateBody]) -> dict[str, Any]:
    """Run the generator only and return the seed's JSON contract."""
    builds.check_prompt(data.prompt)
    return await asyncio.to_thread(builds.generate, data.prompt, data.framework)


@post("/rollback/{version_id:str}", guards=[signed], status_code=200, summary="Roll back to a version",
      responses={**ACCEPTED, **errors(409)})
async def rollback(publisher: NamedDependency[Publisher], builds: NamedDependency[Builds], version_id: FromPath[str],
                   data: JSONBody[ProjectRef], wait: FromQuery[bool] = True) -> Response[Any]:
    """A new version equal to the target: artifact redeployed when it exists, else rebuilt from its sources."""
    v = await asyncio.to_thread(publisher.rollback, data.userId, data.projectId, version_id, data.orgId)
    return await _answer_build(builds, v.version_id, wait)


# -- live build logs ---------------------------------------------------------------------------------------------

@get("/builds/{version_id:str}/logs", guards=[reader], summary="A build's log as server-sent events (live while "
     "it runs)", media_type="text/event-stream", responses=errors(503))
async def build_logs(request: Request[Any, Any, Any], logs: NamedDependency[BuildLogs], version_id: FromPath[str],
                     token: READ_TOKEN = None) -> ServerSentEvent:
    """One `data` event per line (id = line number; Last-Event-ID resumes), then `event: status` with JSON.
    A browser's EventSource passes a read token as `?token=`."""
    await scoped(request, [version_id], versions.get, version_id)  # 403/404 before the stream starts
    return ServerSentEvent(logs.stream(version_id, client_ip(request), request.headers.get("last-event-id", "")))


HANDLERS: list[Any] = [build_new, rebuild, generate, rollback, build_logs]
