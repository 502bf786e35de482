"""The counters the app's edges record (refusals, failed authentication, webhooks, log streams)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.ops.metrics import Metrics


class Telemetry:
    """Records what the guards, the error handler and the routes refuse or receive, in the daemon's metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def rate_limited(self, cap: str) -> None:
        """A request was refused by a rate cap (cap: ip, new_project, rebuild, ...)."""
        self._metrics.rate_limited(cap)

    def disk_full_refused(self, kind: str) -> None:
        """A request was answered 503 disk_full (kind: reserve, write)."""
        self._metrics.disk_full_refused(kind)

    def quota_refused(self, quota: str) -> None:
        """A build was refused by a plan's quota."""
        self._metrics.quota_refused(quota)

    def auth_failed(self, reason: str, ip: str) -> None:
        """A request (API or dashboard sign-in) failed authentication; feeds the API-auth alert."""
        self._metrics.auth_failed(reason, ip)

    def webhook_received(self, kind: str) -> None:
        """A deployment webhook was accepted."""
        self._metrics.webhook_received(kind)

    def webhook_retried(self, kind: str) -> None:
        """The sender delivered a webhook already seen."""
        self._metrics.webhook_retried(kind)

    def webhook_refused(self, reason: str) -> None:
        """A webhook was refused (auth, malformed)."""
        self._metrics.webhook_refused(reason)

    def stream_refused(self, cap: str) -> None:
        """A log stream was refused by a stream cap (total, per_ip)."""
        self._metrics.sse_refused.labels(cap=cap).inc()

    def streams_open(self, count: Callable[[], float]) -> None:
        """Report the open log streams as a gauge read at scrape time."""
        self._metrics.sse_open.set_function(count)
