"""The build queue: Huey on SQLite with one worker thread inside `previewd serve`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import SqliteHuey
from huey.consumer import Consumer

log = logging.getLogger("previewd.queue")

# A queued build should start within tens of milliseconds: the idle worker polls SQLite this often
# (one indexed SELECT) instead of Huey's default back-off to 10 s.
POLL_INTERVAL_S = 0.02
# enqueued_at/started_at hold the builds not yet ended; past this many (a backlog, or entries a crash left), the
# oldest are dropped: they serve latency figures, never the queue's order.
MAX_TRACKED = 4096


class BuildQueue:
    """Enqueue version ids; one worker runs them in order. Dedup is the database's job (one in flight per project)."""

    def __init__(self, path: Path, run_build: Callable[[str], None], *, immediate: bool = False) -> None:
        # immediate: Huey runs each build inline in enqueue() (tests); the queue file is then not used.
        self.huey = SqliteHuey("previewd", filename=str(path), results=False, store_none=False, utc=True,
                               timeout=10, immediate=immediate)
        self._run_build = run_build
        # version id -> monotonic time, while the build waits or runs: removed when it ends, at most MAX_TRACKED.
        self.enqueued_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}

        def build(version_id: str) -> None:
            _track(self.started_at, version_id)
            try:
                self._run_build(version_id)
            finally:
                self.started_at.pop(version_id, None)
                self.enqueued_at.pop(version_id, None)

        self._task: Any = self.huey.task(name="build", retries=0)(build)
        self._consumer: Consumer | None = None
        self._threads: list[Any] = []

    def enqueue(self, version_id: str) -> None:
        """Add a build to the queue (durable: survives a restart until recover() replaces it)."""
        _track(self.enqueued_at, version_id)
        self._task(version_id)

    def pending(self) -> int:
        """Builds waiting to start."""
        return int(self.huey.pending_count())

    def reset(self, version_ids: list[str]) -> None:
        """At start: drop what the queue file holds and enqueue exactly the database's queued versions."""
        self.huey.flush()
        for vid in version_ids:
            self.enqueue(vid)

    def start(self) -> None:
        self._consumer = self.huey.create_consumer(
            workers=1, worker_type="thread", periodic=False, initial_delay=POLL_INTERVAL_S, backoff=1.0,
            max_delay=POLL_INTERVAL_S, check_worker_health=True)
        self._consumer.start()
        self._threads = [t for _, t in self._consumer.worker_threads] + [self._consumer.scheduler]

    def stop(self, graceful: bool = True) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=graceful)
            self._consumer = None

    def alive(self) -> bool:
        """A thread of the consumer (the worker, Huey's scheduler) still runs."""
        return any(t.is_alive() for t in self._threads)


def _track(times: dict[str, float], version_id: str) -> None:
    times.pop(version_id, None)  # re-enqueued: counts as the newest
    while len(times) >= MAX_TRACKED:
        del times[next(iter(times))]
    times[version_id] = time.monotonic()
