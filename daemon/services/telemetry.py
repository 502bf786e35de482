"""The counters the app's edges record (refusals, failed authentication, webhooks, log streams)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from daemon.ops import metrics

if TYPE_CHECKING:
    from daemon.runtime import Runtime


class Telemetry:
    """Records what the guards, the error handler and the routes refuse or receive, in the daemon's metrics."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def rate_limited(self, cap: str) -> None:
        """A request was refused by a rate cap (cap: ip, new_project, rebuild, ...)."""
        metrics.rate_limited(self._rt, cap)

    def disk_full_refused(self, kind: str) -> None:
        """A request was answered 503 disk_full (kind: reserve, write)."""
        metrics.disk_full_refused(self._rt, kind)

    def quota_refused(self, quota: str) -> None:
        """A build was refused by a plan's quota."""
        metrics.quota_refused(self._rt, quota)

    def auth_failed(self, reason: str, ip: str) -> None:
        """A request (API or dashboard sign-in) failed authentication; feeds the API-auth alert."""
        metrics.auth_failed(self._rt, reason, ip)

    def webhook_received(self, kind: str) -> None:
        """A deployment webhook was accepted."""
        metrics.webhook_received(self._rt, kind)

    def webhook_retried(self, kind: str) -> None:
        """The sender delivered a webhook already seen."""
        metrics.webhook_retried(self._rt, kind)

    def webhook_refused(self, reason: str) -> None:
        """A webhook was refused (auth, malformed)."""
        metrics.webhook_refused(self._rt, reason)

    def stream_refused(self, cap: str) -> None:
        """A log stream was refused by a stream cap (total, per_ip)."""
        metrics.of(self._rt).sse_refused.labels(cap=cap).inc()

    def streams_open(self, count: Callable[[], float]) -> None:
        """Report the open log streams as a gauge read at scrape time."""
        metrics.of(self._rt).sse_open.set_function(count)
