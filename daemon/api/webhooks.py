"""Webhook routes: the Cloudflare Pages deployment notification, authenticated by `cf-webhook-auth`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, post

from daemon.api.docs import errors
from daemon.api.guards import ops_jobs, rt
from daemon.core.errors import BadRequest, Unauthorized
from daemon.deployers.cloudflare.webhook import WebhookPayloadError, parse_pages_event, verify_auth
from daemon.publish import deploywatch

log = logging.getLogger("previewd.api")


@post("/cf-pages-callback", status_code=200, summary="Cloudflare Pages deployment notification",
      responses=errors(401, 503))
async def cf_pages_callback(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Checks cf-webhook-auth in constant time, then settles the deployment once (replays change nothing). A
    settlement that cannot be written for space answers 503 disk_full (the app's error handler), so the sender
    retries it; the deploy-status poll settles it too once there is room."""
    runtime = rt(request)
    if not verify_auth(request.headers.get("cf-webhook-auth"), runtime.cfg.secrets.cf_webhook_secret):
        ops_jobs(request).metrics.webhook_refused("auth")
        log.warning("pages webhook refused: bad or missing cf-webhook-auth from %s",
                    request.client.host if request.client else "?")
        raise Unauthorized("missing or wrong cf-webhook-auth", code="webhook_auth")
    body = await request.body()
    try:
        event = parse_pages_event(body)
    except WebhookPayloadError as exc:
        ops_jobs(request).metrics.webhook_refused("malformed")
        raise BadRequest(str(exc), code="bad_webhook_payload") from exc
    ops_jobs(request).metrics.webhook_received(event.state if event is not None else "ignored")
    if event is None:
        return {"ok": True, "matched": False}
    result = await asyncio.to_thread(deploywatch.handle_event, runtime, event)
    if result.get("matched") and result.get("changed") is False:
        ops_jobs(request).metrics.webhook_retried(event.state)
    return result


HANDLERS: list[Any] = [cf_pages_callback]
