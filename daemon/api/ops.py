"""Operations routes: pin/unpin, Prometheus metrics, health detail with alerts, live build logs (SSE), cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage

from daemon.api.app import errors, signed
from daemon.build import isolation, service
from daemon.build.buildlog import BuildLog
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.ops import alerts, cleanup, metrics
from daemon.runtime import Runtime

log = logging.getLogger("previewd.ops")

KEEPALIVE_S = 15.0
WAIT_POLL_S = 0.2


def _rt(request: Request[Any, Any, Any]) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def set_pinned(rt: Runtime, version_id: str, pinned: bool) -> ProjectVersion:
    """Pin or unpin a version (404 unknown); a no-op when it already is, so the row version does not move."""
    v = service.get_version(version_id)
    if bool(v.pinned) == pinned:
        return v
    return versions.update(rt.outbox, version_id, pinned=pinned)


@post("/versions/{version_id:str}/pin", guards=[signed], status_code=200, summary="Pin a version (kept forever)")
async def pin(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    """Cleanup never deletes a pinned version, its artifact or its preview."""
    v = await asyncio.to_thread(set_pinned, _rt(request), version_id, True)
    return service.version_json(v)


@post("/versions/{version_id:str}/unpin", guards=[signed], status_code=200, summary="Unpin a version")
async def unpin(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    v = await asyncio.to_thread(set_pinned, _rt(request), version_id, False)
    return service.version_json(v)


@get("/metrics", summary="Prometheus metrics", media_type=metrics.CONTENT_TYPE)
async def prometheus(request: Request[Any, Any, Any]) -> Response[bytes]:
    rt = _rt(request)
    m = metrics.of(rt)
    await asyncio.to_thread(m.refresh, rt, getattr(request.app.state, "queue", None))
    return Response(m.render(), media_type=metrics.CONTENT_TYPE)


def health_detail(rt: Runtime) -> dict[str, Any]:
    """Liveness plus the alerts firing at the last evaluation (evaluated now when never evaluated yet)."""
    st = alerts.state(rt)
    firing = alerts.active(rt) if st.last_evaluated else alerts.evaluate(rt)
    out: dict[str, Any] = {"ok": not firing, "alerts": [a.to_json() for a in firing],
                           "evaluatedAt": st.last_evaluated}
    # Said on every detailed health read: unconfined builds, or builds refused for want of the isolation layer.
    conf = isolation.confinement(rt.cfg)
    out["isolation"] = conf.as_dict()
    if not conf.confined:
        out["warnings"] = [isolation.UNCONFINED_WARNING if conf.allowed else
                           f"builds are refused (sandbox_unavailable): {conf.why}; fix: {conf.fix}"]
    return out


@get("/healthz/detail", summary="Liveness with the alerts firing now")
async def healthz_detail(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(health_detail, _rt(request))


@post("/ops/cleanup", guards=[signed], status_code=200, summary="Run the retention cleanup now (signed)",
      responses=errors(409))
async def run_cleanup(request: Request[Any, Any, Any], dryRun: FromQuery[bool] = False) -> dict[str, Any]:
    """The nightly job on demand; `dryRun=1` reports what it would do and changes nothing. 409 when one runs."""
    report = await asyncio.to_thread(cleanup.run_cleanup, _rt(request), dry_run=dryRun)
    return report.to_json()


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


async def _log_events(rt: Runtime, version_id: str, skip: int) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Stored lines, then live lines as the build writes them, then one `status` event."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_line(text: str | None) -> None:  # runs on the build thread
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown); the build must not notice
            loop.call_soon_threadsafe(queue.put_nowait, text)

    n = 0
    attached: tuple[list[str], Callable[[], None]] | None = None
    while True:
        blog = rt.live_logs.get(version_id)
        if blog is not None:
            attached = await asyncio.to_thread(attach, blog, on_line)
            if attached is not None:
                break
        v = await asyncio.to_thread(service.get_version, version_id)
        if v.status not in ("queued", "building") and rt.live_logs.get(version_id) is None:
            break  # finished (or deploying without a build thread): the stored log is complete
        await asyncio.sleep(WAIT_POLL_S)  # queued: the worker has not opened the log yet
        n += 1
        if n % int(KEEPALIVE_S / WAIT_POLL_S) == 0:
            yield ServerSentEventMessage(comment=f"waiting, {v.status}")
    if attached is None:
        path = rt.log_path(version_id)
        text = await asyncio.to_thread(lambda: path.read_text(encoding="utf-8", errors="replace")
                                       if path.exists() else "")
        for i, line in enumerate(_lines(text), 1):
            if i > skip:
                yield ServerSentEventMessage(data=line, id=i)
        yield _status_event(await asyncio.to_thread(service.get_version, version_id))
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
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keepalive")
                continue
            if item is None:
                break
            count += 1
            if count > skip:
                yield ServerSentEventMessage(data=item, id=count)
        yield _status_event(await asyncio.to_thread(service.get_version, version_id))
    finally:  # also on a client disconnect (the stream is cancelled)
        off()


@get("/builds/{version_id:str}/logs", summary="A build's log as server-sent events (live while it runs)",
     media_type="text/event-stream")
async def build_logs(request: Request[Any, Any, Any], version_id: FromPath[str]) -> ServerSentEvent:
    """One `data` event per line (id = line number; Last-Event-ID resumes), then `event: status` with JSON."""
    rt = _rt(request)
    await asyncio.to_thread(service.get_version, version_id)  # 404 before the stream starts
    last = request.headers.get("last-event-id", "")
    skip = int(last) if last.isdigit() else 0
    return ServerSentEvent(_log_events(rt, version_id, skip))


HANDLERS: list[Any] = [pin, unpin, prometheus, healthz_detail, run_cleanup, build_logs]
