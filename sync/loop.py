"""SyncLoop: the background thread that drains the outbox every few seconds and whenever nudged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

import tenacity

from sync.outbox import DrainStats, Handler, Outbox

log = logging.getLogger(__name__)


class SyncLoop:
    """Drains ``outbox`` into ``handlers`` on a thread; never dies, backs off when a drain itself blows up."""

    def __init__(
        self,
        outbox: Outbox,
        handlers: Mapping[str, Handler],
        interval_s: float = 2.0,
        *,
        max_batch: int = 100,
        max_backoff_s: float = 60.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.outbox = outbox
        self.handlers = dict(handlers)
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.max_backoff_s = max_backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_stats: DrainStats | None = None

    def start(self) -> None:
        """Start the thread (a second call is a no-op while it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="previewd-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to finish its current batch and exit; wait up to ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def nudge(self) -> None:
        """Drain soon (called after each local write) instead of waiting for the next tick."""
        self._wake.set()

    def _run(self) -> None:
        # tenacity keeps the failure streak: waits double from twice the tick up to max_backoff_s, and each wait
        # is the wake event's, so nudge() and stop() cut it short.
        drain = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Exception),  # the loop boundary: log, back off, keep going
            wait=tenacity.wait_exponential(multiplier=2 * self.interval_s, max=self.max_backoff_s),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._pause,
            before_sleep=_log_failure,
            reraise=True,
        ).wraps(self.outbox.drain)
        while not self._stop.is_set():
            try:
                self.last_stats = drain(self.handlers, max_batch=self.max_batch)
            except Exception:  # only when stop() came during a failure streak
                log.exception("sync loop: drain failed while stopping")
                return
            self._pause(self.interval_s)

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def drain_now(self, destination: str) -> DrainStats | None:
        """Send one destination's backlog on the caller's thread, now (None when it is not configured).

        For a local destination whose readers must see a write at once (the local KV pointer after a move).
        """
        handler = self.handlers.get(destination)
        if handler is None:
            return None
        return self.outbox.drain({destination: handler}, max_batch=self.max_batch)

    def flush(self, timeout_s: float = 30.0) -> DrainStats:
        """Drain now, ignoring backoff, until nothing is pending, nothing moves, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        total = DrainStats()
        while True:
            stats = self.outbox.drain(self.handlers, max_batch=self.max_batch, force=True)
            total.merge(stats)
            total.errors = dict(stats.errors)  # report what still fails, not what failed and then healed
            configured = sum(self.outbox.pending(d) for d in self.handlers)
            if configured == 0 or time.monotonic() >= deadline:
                return total
            if stats.total_sent == 0:  # every destination failed this round: wait a little, try again
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _log_failure(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.error("sync loop: drain failed (%d in a row), next try in %.1fs", state.attempt_number,
              state.upcoming_sleep, exc_info=exc)
