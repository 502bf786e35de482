"""Request guards and accessors shared by the route modules: the runtime and queue of a request, the `signed` guard."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from daemon.build.queue import BuildQueue
from daemon.core import ratelimit
from daemon.core import signing as security
from daemon.core.errors import PayloadTooLarge
from daemon.runtime import Runtime


def rt(conn: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The runtime the app was built around."""
    runtime: Runtime = conn.app.state.runtime
    return runtime


def queue(conn: ASGIConnection[Any, Any, Any, Any]) -> BuildQueue:
    """The build queue the app was built around."""
    q: BuildQueue = conn.app.state.queue
    return q


def client_ip(conn: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address as the server sees it (uvicorn applies X-Forwarded-For from trusted proxies only)."""
    return conn.client.host if conn.client else "unknown"


async def signed(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for mutating routes: per-IP cap first (bots pay before they are checked), then the HMAC."""
    runtime = rt(connection)
    await asyncio.to_thread(ratelimit.hit, f"ip:{client_ip(connection)}", runtime.cfg.rate_limits.per_ip_per_hour,
                            "requests per IP")
    request: Request[Any, Any, Any] = connection  # type: ignore[assignment]
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > runtime.cfg.server.max_body_bytes:
        raise PayloadTooLarge(f"body larger than {runtime.cfg.server.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > runtime.cfg.server.max_body_bytes:
        raise PayloadTooLarge(f"body larger than {runtime.cfg.server.max_body_bytes} bytes")
    security.verify(runtime.cfg.secrets.hmac_secret, body, request.headers.get("x-sheen-signature"),
                    request.headers.get("x-sheen-timestamp"))
