"""The one seam for background work: every long-lived job of the daemon is declared here, by name, with where it
runs, what triggers it and how it stops; `previewd serve` starts and stops them through it, `/status` lists them.

Where work runs (`Job.runs_in`):
- ``build worker``: Huey's one consumer thread (daemon/intake/queue.py), builds in queue order.
- ``scheduler``: APScheduler's thread pool (daemon/ops/scheduler.py), every periodic job.
- ``bounded pool``: a fixed-size executor (the after-live pool: one thread, in order).
- ``own thread``: a loop of its own (the sync loop, the fleet's lease keeper), or a short-lived thread per item
  (late checks recordings, alert webhooks) that a registry bounds and joins.

Call-scoped threads are not jobs: a build's audit and checks threads, a generator's pipe readers, Wrangler's
output reader and the render origin's pool live inside one call and are joined (or shut down) by it.

Also `Owned`: per-daemon state with an owner (the runtime) and a bound (a fixed number of slots), for state that
would otherwise sit in a module-level map. The fleet's per-project guards belong to its `LeasedFleet`; the metrics
and the alert state to the daemon's operations jobs (daemon/ops/jobs.py, built by daemon/wiring.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger("previewd.background")

RunsIn = Literal["build worker", "scheduler", "bounded pool", "own thread"]
T = TypeVar("T")


@dataclass
class Job:
    """One background job: its name, where it runs, its trigger, how it stops (said, and done by `stop`)."""

    name: str
    runs_in: RunsIn
    trigger: str  # what makes it run: "queue", "every 10 s", "per late check", ...
    stops: str  # how `stop` ends it: "drain within the grace period, then cancel", "shutdown", ...
    start: Callable[[], None] | None = None  # None: running from its creation (a pool), or started per item
    stop: Callable[[float], None] | None = None  # given the grace period in seconds
    alive: Callable[[], bool] = lambda: False  # a thread of this job still runs
    started: bool = field(default=False, repr=False)
    stopped: bool = field(default=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """The job as `/status` shows it."""
        return {"name": self.name, "runsIn": self.runs_in, "trigger": self.trigger, "stops": self.stops,
                "alive": bool(self.alive())}


class Jobs:
    """Every background job of one daemon. Started in the order declared, stopped in reverse order, each once."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._lock = threading.Lock()

    def declare(self, job: Job) -> Job:
        """Add a job (a name is declared once)."""
        with self._lock:
            if any(j.name == job.name for j in self._jobs):
                raise ValueError(f"background job {job.name!r} is already declared")
            self._jobs.append(job)
        return job

    def __iter__(self) -> Any:
        return iter(list(self._jobs))

    def get(self, name: str) -> Job | None:
        return next((j for j in self._jobs if j.name == name), None)

    def start(self) -> None:
        """Start every job not yet started."""
        for job in list(self._jobs):
            if job.started or job.stopped:
                continue
            job.started = True
            if job.start is not None:
                job.start()

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop every job (last declared first); a job that fails to stop is logged and the rest still stop."""
        for job in reversed(list(self._jobs)):
            if job.stopped:
                continue
            job.stopped = True
            if job.stop is None:
                continue
            try:
                job.stop(grace_s)
            except Exception:
                log.exception("stopping background job %s failed", job.name)

    def alive(self) -> list[str]:
        """The names of the jobs with a thread still running."""
        return [j.name for j in self._jobs if j.alive()]

    def describe(self) -> list[dict[str, Any]]:
        return [j.describe() for j in self._jobs]


class Owned:
    """Per-daemon state with an owner (the runtime) and a bound (a fixed number of slots), made on first use."""

    def __init__(self, slots: int = 16) -> None:
        self._slots = slots
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str, make: Callable[[], T]) -> T:
        """The object in slot `name`, made by `make` the first time."""
        with self._lock:
            item = self._items.get(name)
            if item is None:
                if len(self._items) >= self._slots:
                    raise RuntimeError(f"no slot left for {name!r}: {len(self._items)} of {self._slots} used")
                item = self._items[name] = make()
            return item  # type: ignore[no-any-return]
