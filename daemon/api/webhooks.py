"""Webhook routes: the Cloudflare Pages deployment notification, authenticated by `cf-webhook-auth`."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency

from daemon.api.docs import errors
from daemon.services.callbacks import PagesCallbacks


@post("/cf-pages-callback", status_code=200, summary="Cloudflare Pages deployment notification",
      responses=errors(401, 503))
async def cf_pages_callback(request: Request[Any, Any, Any],
                            callbacks: NamedDependency[PagesCallbacks]) -> dict[str, Any]:
    """Checks cf-webhook-auth in constant time, then settles the deployment once (replays change nothing). A
    settlement that cannot be written for space answers 503 disk_full (the app's error handler), so the sender
    retries it; the deploy-status poll settles it too once there is room."""
    callbacks.check_auth(request.headers.get("cf-webhook-auth"), request.client.host if request.client else "?")
    event = callbacks.parse(await request.body())
    if event is None:
        return {"ok": True, "matched": False}
    return await asyncio.to_thread(callbacks.settle, event)


HANDLERS: list[Any] = [cf_pages_callback]
