"""The HTTP API's app factory (Litestar): collects the route modules' handlers, one JSON error shape, OpenAPI."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.response_cache import ResponseCacheConfig
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig

from daemon.api import builds, ops, projects, tokens, usage, versions, webhooks
from daemon.api.docs import document_errors
from daemon.api.guards import ops_jobs
from daemon.api.streams import StreamSlots
from daemon.core import diskspace, nonces
from daemon.core.errors import AppError, QuotaExceeded, RateLimited
from daemon.core.ratelimit import MemoryWindow
from daemon.intake import requests
from daemon.intake.queue import BuildQueue
from daemon.ops.jobs import OpsJobs
from daemon.runtime import Runtime

log = logging.getLogger("previewd.api")

ROUTE_MODULES = (builds, versions, projects, ops, webhooks, tokens, usage)


def _error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, RateLimited):
        with contextlib.suppress(Exception):
            ops_jobs(request).metrics.rate_limited(exc.message.removeprefix("rate cap reached: ").split(" (")[0])
    if isinstance(exc, diskspace.DiskFull):
        with contextlib.suppress(Exception):
            ops_jobs(request).metrics.disk_full_refused("reserve" if "reserveBytes" in exc.extra else "write")
    if isinstance(exc, QuotaExceeded):
        with contextlib.suppress(Exception):
            ops_jobs(request).metrics.quota_refused(str(exc.extra.get("quota")))
    if isinstance(exc, AppError):
        return Response(exc.body(), status_code=exc.status, headers=exc.headers)
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        first = extra[0] if extra and isinstance(extra[0], dict) else {}
        bad = requests.invalid(str(first.get("message") or exc.detail), first.get("key"))
        return Response(bad.body(), status_code=bad.status)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code,
                                                                                          "http_error")
        return Response({"error": {"code": code, "message": exc.detail}}, status_code=exc.status_code,
                        headers=exc.headers or None)
    runtime = request.app.state.runtime
    if diskspace.caused_by_full_disk(exc, runtime.data_dir):
        # A named condition the caller can wait out (Retry-After), not an internal error; nothing was half-written
        # because the transaction that hit it rolled back.
        err = diskspace.disk_full(runtime.data_dir, exc, what=f"{request.method} {request.url.path}")
        log.warning("disk full: %s (%s: %s)", err.message, type(exc).__name__, exc)
        with contextlib.suppress(Exception):
            ops_jobs(request).metrics.disk_full_refused("write")
        return Response(err.body(), status_code=err.status, headers=err.headers)
    log.exception("unhandled error", exc_info=exc)
    return Response({"error": {"code": "internal_error", "message": "internal error; see the daemon log"}},
                    status_code=500)


def _templates() -> Any:
    from daemon.ui.router import template_config

    return template_config()


def create_app(runtime: Runtime, queue: BuildQueue, ops: OpsJobs) -> Litestar:
    """The Litestar application around a built runtime, queue and operations jobs: every route module's handlers."""
    handlers: list[Any] = [h for module in ROUTE_MODULES for h in module.HANDLERS]
    for handler in handlers:
        document_errors(handler)
    if runtime.cfg.ui.enabled:  # the dashboard; the preview Host wrapper and the public listener never reach it
        from daemon.ui.router import ui_router

        handlers.append(ui_router(runtime.cfg))
    app = Litestar(
        route_handlers=handlers,
        exception_handlers={Exception: _error_response},
        openapi_config=OpenAPIConfig(title="previewd", version="0.1.0", path="/schema"),
        request_max_body_size=runtime.cfg.server.max_body_bytes,
        response_cache_config=ResponseCacheConfig(),
        logging_config=None,  # logging is configured once by logging_setup, not re-done by the framework
        debug=False,
        template_config=_templates() if runtime.cfg.ui.enabled else None,
    )
    app.state.runtime = runtime
    app.state.queue = queue
    app.state.ops = ops
    # Auth and stream bookkeeping live with the app: in memory, per daemon; replays are refused across restarts.
    nonces.ensure_schema()
    app.state.auth_failures = MemoryWindow()
    app.state.read_cap_fallback = MemoryWindow()  # signed reads' per-IP cap while state.db cannot be written
    app.state.ui_sign_in_failures = MemoryWindow()  # the dashboard's password guesses, per IP
    server = runtime.cfg.server
    app.state.streams = slots = StreamSlots(server.sse_max_streams, server.sse_max_streams_per_ip)
    ops.metrics.sse_open.set_function(lambda: slots.open)
    return app
