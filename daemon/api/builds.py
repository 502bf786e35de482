"""Build routes: new project, rebuild, generate, rollback, and a build's live log as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from daemon.api.docs import ACCEPTED, READ_TOKEN, errors
from daemon.api.guards import client_ip, ops_jobs, queue, reader, rt, scoped, signed, streams
from daemon.api.streams import StreamSlot
from daemon.core import versions
from daemon.core.contract import ContractError
from daemon.core.db import ProjectVersion
from daemon.core.errors import Unavailable
from daemon.generators import GenerationError, GenerationRequest
from daemon.intake import requests, submit
from daemon.intake import rollback as rolling_back
from daemon.intake.requests import GenerateBody, NewProjectBody, ProjectRef, RebuildBody
from daemon.project.buildlog import BuildLog
from daemon.runtime import Runtime

KEEPALIVE_S = 15.0


async def _answer_build(request: Request[Any, Any, Any], version_id: str, wait: bool) -> Response[Any]:
    runtime = rt(request)
    if wait and runtime.cfg.server.wait_timeout_s > 0:
        await runtime.waiters.wait(version_id, runtime.cfg.server.wait_timeout_s,
                                   lambda: versions.get(version_id).status in submit.TERMINAL)
    v = await asyncio.to_thread(versions.get, version_id)
    status, body = submit.build_answer(runtime, v)
    return Response(body, status_code=status)


# The seed's three routes accept its body-only signature too (see guards.signed): their body names the operation.
SEED_ROUTE = {"body_only_signature": True}


@post("/build-preview-for-new-project", guards=[signed], opt=SEED_ROUTE, status_code=200,
      summary="Build a new project", responses={**ACCEPTED, **errors(409)})
async def build_new(request: Request[Any, Any, Any], data: JSONBody[NewProjectBody],
                    wait: FromQuery[bool] = True) -> Response[Any]:
    """Scaffold, build and deploy a new project; waits for the build unless wait=false."""
    runtime = rt(request)
    requests.check_prompt_cap(data.prompt, runtime.cfg.limits.max_prompt_chars)
    v = await asyncio.to_thread(submit.submit_new, runtime, queue(request), data)
    return await _answer_build(request, v.version_id, wait)


@post("/rebuild-preview", guards=[signed], opt=SEED_ROUTE, status_code=200, summary="Rebuild an existing project",
      responses={**ACCEPTED, **errors(404, 409)})
async def rebuild(request: Request[Any, Any, Any], data: JSONBody[RebuildBody],
                  wait: FromQuery[bool] = True) -> Response[Any]:
    """Refine a project from its base version (default: the latest deployed)."""
    runtime = rt(request)
    requests.check_prompt_cap(data.prompt, runtime.cfg.limits.max_prompt_chars)
    v = await asyncio.to_thread(submit.submit_rebuild, runtime, queue(request), data)
    return await _answer_build(request, v.version_id, wait)


@post("/generate", guards=[signed], opt=SEED_ROUTE, status_code=200,
      summary="Generate a project (the contract JSON)", responses=errors(503))
async def generate(request: Request[Any, Any, Any], data: JSONBody[GenerateBody]) -> dict[str, Any]:
    """Run the generator only and return the seed's JSON contract."""
    runtime = rt(request)
    requests.check_prompt_cap(data.prompt, runtime.cfg.limits.max_prompt_chars)
    try:
        result = await asyncio.to_thread(runtime.generator.generate,
                                         GenerationRequest(prompt=data.prompt, framework=data.framework),
                                         lambda _line: None)
    except GenerationError as exc:
        raise Unavailable(exc.message, code="generation_failed") from exc
    except ContractError as exc:
        raise Unavailable(str(exc), code="invalid_output") from exc
    return result.contract.to_json()


@post("/rollback/{version_id:str}", guards=[signed], status_code=200, summary="Roll back to a version",
      responses={**ACCEPTED, **errors(409)})
async def rollback(request: Request[Any, Any, Any], version_id: FromPath[str], data: JSONBody[ProjectRef],
                   wait: FromQuery[bool] = True) -> Response[Any]:
    """A new version equal to the target: artifact redeployed when it exists, else rebuilt from its sources."""
    v = await asyncio.to_thread(rolling_back.rollback, rt(request), queue(request), data.userId, data.projectId,
                                version_id, data.orgId)
    return await _answer_build(request, v.version_id, wait)


# -- live build logs ---------------------------------------------------------------------------------------------

def attach(blog: BuildLog, fn: Callable[[str | None], None]) -> tuple[list[str], Callable[[], None]] | None:
    """The lines written so far and a subscription to every later one (see BuildLog.attach)."""
    return blog.attach(fn)


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _status_event(v: ProjectVersion) -> ServerSentEventMessage:
    body = {"versionId": v.version_id, "status": v.status, "failureReason": v.failure_reason,
            "previewUrl": v.preview_url}
    return ServerSentEventMessage(data=json.dumps(body), event="status")


async def _log_events(runtime: Runtime, version_id: str, skip: int,
                      slot: StreamSlot | None = None) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Stored lines, then live lines as the build writes them, then one `status` event.

    A queued build has no log yet: the stream waits on the live-log table, which wakes it the moment the worker
    opens the log (or the build ends), with a keepalive comment every KEEPALIVE_S meanwhile.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def on_line(text: str | None) -> None:  # runs on the build thread
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown); the build must not notice
            loop.call_soon_threadsafe(lines.put_nowait, text)

    attached: tuple[list[str], Callable[[], None]] | None = None
    try:
        while True:
            woke: asyncio.Future[None] = loop.create_future()

            def wake(fut: asyncio.Future[None] = woke) -> None:  # runs on the build thread
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(lambda: None if fut.done() else fut.set_result(None))

            unwatch = runtime.live_logs.watch(version_id, wake)  # before the checks below, so no wake is missed
            try:
                blog = runtime.live_logs.get(version_id)
                if blog is not None:
                    attached = await asyncio.to_thread(attach, blog, on_line)
                    if attached is not None:
                        break
                v = await asyncio.to_thread(versions.get, version_id)
                if v.status not in ("queued", "building") and runtime.live_logs.get(version_id) is None:
                    break  # finished (or deploying without a build thread): the stored log is complete
                try:
                    await asyncio.wait_for(woke, KEEPALIVE_S)
                except TimeoutError:
                    yield ServerSentEventMessage(comment=f"waiting, {v.status}")
            finally:
                unwatch()
        if attached is None:
            path = runtime.layout.log_path(version_id)
            text = await asyncio.to_thread(lambda: path.read_text(encoding="utf-8", errors="replace")
                                           if path.exists() else "")
            for i, line in enumerate(_lines(text), 1):
                if i > skip:
                    yield ServerSentEventMessage(data=line, id=i)
            yield _status_event(await asyncio.to_thread(versions.get, version_id))
            return
        stored, off = attached
        try:
            count = 0
            for line in stored:
                count += 1
                if count > skip:
                    yield ServerSentEventMessage(data=line, id=count)
            while True:
                try:
                    item = await asyncio.wait_for(lines.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keepalive")
                    continue
                if item is None:
                    break
                count += 1
                if count > skip:
                    yield ServerSentEventMessage(data=item, id=count)
            yield _status_event(await asyncio.to_thread(versions.get, version_id))
        finally:  # also on a client disconnect (the stream is cancelled)
            off()
    finally:
        if slot is not None:
            slot.release()


@get("/builds/{version_id:str}/logs", guards=[reader], summary="A build's log as server-sent events (live while "
     "it runs)", media_type="text/event-stream", responses=errors(503))
async def build_logs(request: Request[Any, Any, Any], version_id: FromPath[str],
                     token: READ_TOKEN = None) -> ServerSentEvent:
    """One `data` event per line (id = line number; Last-Event-ID resumes), then `event: status` with JSON.
    A browser's EventSource passes a read token as `?token=`."""
    await scoped(request, [version_id], versions.get, version_id)  # 403/404 before the stream starts
    return log_stream(request, version_id)


def log_stream(request: Request[Any, Any, Any], version_id: str) -> ServerSentEvent:
    """The log stream of a version the caller may read, under the stream caps (this route's and the dashboard's
    one path); Last-Event-ID resumes after that line."""
    runtime = rt(request)
    try:
        slot = streams(request).acquire(client_ip(request))
    except Unavailable as exc:
        ops_jobs(request).metrics.sse_refused.labels(cap=exc.extra.get("cap", "total")).inc()
        raise
    last = request.headers.get("last-event-id", "")
    skip = int(last) if last.isdigit() else 0
    return ServerSentEvent(_log_events(runtime, version_id, skip, slot))


HANDLERS: list[Any] = [build_new, rebuild, generate, rollback, build_logs]
