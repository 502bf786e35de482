"""Deployment callbacks: the Cloudflare Pages notification, authenticated, parsed and settled once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from daemon.core.errors import BadRequest, Unauthorized
from daemon.deployers.cloudflare.webhook import PagesEvent, WebhookPayloadError, parse_pages_event, verify_auth
from daemon.publish import deploywatch
from daemon.services.telemetry import Telemetry

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.api")


class PagesCallbacks:
    """Checks `cf-webhook-auth` in constant time, reads the event, settles its deployment (replays change nothing);
    each outcome is counted in the webhook metrics."""

    def __init__(self, rt: Runtime, telemetry: Telemetry) -> None:
        self._rt = rt
        self._telemetry = telemetry

    def check_auth(self, header: str | None, client: str) -> None:
        """401 (and counted, and logged with the sender's address) unless the header carries the shared secret."""
        if not verify_auth(header, self._rt.cfg.secrets.cf_webhook_secret):
            self._telemetry.webhook_refused("auth")
            log.warning("pages webhook refused: bad or missing cf-webhook-auth from %s", client)
            raise Unauthorized("missing or wrong cf-webhook-auth", code="webhook_auth")

    def parse(self, body: bytes) -> PagesEvent | None:
        """The event in the body (None for one that names no deployment state); 400 for a malformed body."""
        try:
            event = parse_pages_event(body)
        except WebhookPayloadError as exc:
            self._telemetry.webhook_refused("malformed")
            raise BadRequest(str(exc), code="bad_webhook_payload") from exc
        self._telemetry.webhook_received(event.state if event is not None else "ignored")
        return event

    def settle(self, event: PagesEvent) -> dict[str, Any]:
        """Settle the event's deployment once (blocks: call it off the event loop); a settlement that cannot be
        written for space raises, so the sender retries it."""
        result = deploywatch.handle_event(self._rt, event)
        if result.get("matched") and result.get("changed") is False:
            self._telemetry.webhook_retried(event.state)
        return result
