"""The one HTTP client for Cloudflare's REST API (KV here, Pages in daemon/deployers/cloudflare): bearer token,
redaction, the error envelope, the one `Retry-After` parser and the one retry/backoff loop.

It lives in `sync` so that both the KV backend (sync) and the Pages deployer (daemon) can use it: `sync` never
imports `daemon`.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sync.errors import RemoteError

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.cloudflare.com/client/v4"
REDACTED = "[redacted]"


def redact(text: str, *secrets: str) -> str:
    """Return ``text`` with every non-empty secret replaced by a marker."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def parse_retry_after(value: str | None, *, default: float | None = None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date, never negative); ``default`` when
    it is absent or unreadable."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def envelope_errors(resp: httpx.Response) -> str:
    """The ``errors`` of a Cloudflare envelope as one line (``code: message; ...``), or the status text."""
    try:
        body = resp.json()
        errors = body.get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
        if text:
            return text
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status_code} {resp.reason_phrase}".strip()


@dataclass(frozen=True)
class Backoff:
    """How `CloudflareHttp.send_retrying` waits: ``retries`` more attempts after the first, exponential from
    ``base_s`` with jitter unless the answer says ``Retry-After``; a wait above ``max_wait_s`` gives up at once."""

    retries: int = 3
    base_s: float = 0.5
    max_wait_s: float = 10.0


class CloudflareHttp:
    """One authenticated httpx client for one Cloudflare API base; owns (and closes) the client it created."""

    def __init__(self, api_token: str, *, api_base: str = DEFAULT_API_BASE, http: httpx.Client | None = None,
                 timeout_s: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base = api_base.rstrip("/")
        self._token = api_token
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout_s)
        self._sleep = sleep

    def redact(self, text: str) -> str:
        """``text`` without the API token."""
        return redact(text, self._token)

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        """One attempt with the bearer token (``url``: absolute); httpx.HTTPError on a transport failure."""
        return self._http.request(method, url, headers={"Authorization": f"Bearer {self._token}", **(headers or {})},
                                  **kwargs)

    def send_retrying(self, method: str, url: str, operation: str, backoff: Backoff, **kwargs: Any) -> httpx.Response:
        """Send with retries on 429, 5xx and transport errors; return the response for any other status, else
        raise a retryable RemoteError once the retries (or the longest acceptable wait) are spent."""
        attempt = 0
        while True:
            wait: float | None = None
            try:
                resp = self.send(method, url, **kwargs)
            except httpx.TransportError as exc:
                error = RemoteError(f"{type(exc).__name__}: {exc}", operation=operation, retryable=True)
            else:
                if resp.status_code != 429 and resp.status_code < 500:
                    return resp
                wait = parse_retry_after(resp.headers.get("retry-after"))
                error = RemoteError(
                    envelope_errors(resp),
                    operation=operation,
                    retryable=True,
                    status=resp.status_code,
                    retry_after=wait,
                    code="rate_limited" if resp.status_code == 429 else "remote_unavailable",
                )
            if attempt >= backoff.retries:
                raise error
            attempt += 1
            delay = wait if wait is not None else backoff.base_s * 2 ** (attempt - 1) * random.uniform(1.0, 1.5)
            if delay > backoff.max_wait_s:
                raise error  # the caller (the outbox) comes back later; do not hold its loop for minutes
            log.info("%s: %s, retry %d in %.2fs", operation, error.message, attempt, delay)
            self._sleep(delay)
