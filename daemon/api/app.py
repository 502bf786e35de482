"""The HTTP API's app factory (Litestar): collects the route modules' handlers, one JSON error shape, OpenAPI.

The composition root (`daemon.wiring`) calls it with the services to inject and any routes beside the API's (the
dashboard's router), so this package never imports the dashboard.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.template.config import TemplateConfig

from daemon.api import builds, ops, projects, tokens, usage, versions, webhooks
from daemon.api.docs import document_errors
from daemon.api.guards import access
from daemon.core import diskspace, nonces
from daemon.core.config import Config
from daemon.core.errors import AppError, QuotaExceeded, RateLimited
from daemon.intake import requests
from daemon.services.access import Access

log = logging.getLogger("previewd.api")

ROUTE_MODULES = (builds, versions, projects, ops, webhooks, tokens, usage)


def _error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, RateLimited):
        with contextlib.suppress(Exception):
            access(request).telemetry.rate_limited(exc.message.removeprefix("rate cap reached: ").split(" (")[0])
    if isinstance(exc, diskspace.DiskFull):
        with contextlib.suppress(Exception):
            access(request).telemetry.disk_full_refused("reserve" if "reserveBytes" in exc.extra else "write")
    if isinstance(exc, QuotaExceeded):
        with contextlib.suppress(Exception):
            access(request).telemetry.quota_refused(str(exc.extra.get("quota")))
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
    gate = access(request)
    if diskspace.caused_by_full_disk(exc, gate.data_dir):
        # A named condition the caller can wait out (Retry-After), not an internal error; nothing was half-written
        # because the transaction that hit it rolled back.
        err = diskspace.disk_full(gate.data_dir, exc, what=f"{request.method} {request.url.path}")
        log.warning("disk full: %s (%s: %s)", err.message, type(exc).__name__, exc)
        with contextlib.suppress(Exception):
            gate.telemetry.disk_full_refused("write")
        return Response(err.body(), status_code=err.status, headers=err.headers)
    log.exception("unhandled error", exc_info=exc)
    return Response({"error": {"code": "internal_error", "message": "internal error; see the daemon log"}},
                    status_code=500)


def create_app(cfg: Config, gate: Access, dependencies: Mapping[str, Provide], *, extra: Sequence[Any] = (),
               template_config: TemplateConfig[Any] | None = None) -> Litestar:
    """The Litestar application: every route module's handlers and the `extra` routes, the services in
    `dependencies` injected by name into any handler that asks for them, `gate` for the guards."""
    handlers: list[Any] = [h for module in ROUTE_MODULES for h in module.HANDLERS]
    for handler in handlers:
        document_errors(handler)
    app = Litestar(
        route_handlers=[*handlers, *extra],
        dependencies=dict(dependencies),
        exception_handlers={Exception: _error_response},
        openapi_config=OpenAPIConfig(title="previewd", version="0.1.0", path="/schema"),
        request_max_body_size=cfg.server.max_body_bytes,
        response_cache_config=ResponseCacheConfig(),
        logging_config=None,  # logging is configured once by logging_setup, not re-done by the framework
        debug=False,
        template_config=template_config,
    )
    # Guards and exception handlers take no dependencies: the one thing they read from the app's state.
    app.state.access = gate
    nonces.ensure_schema()  # replays are refused across restarts: the signatures seen live in state.db
    return app
