"""The daemon's event bus: the declared event types, and `Events`, which hands each published event to the
handlers subscribed to its type.

Publishers (the build worker, the deploy watcher) announce what happened; subscribers (metrics, the fleet's lease
keeper) act on it. A handler that raises is logged and skipped: an event never fails the work that announced it.
Handlers run on the publisher's thread, in the order they subscribed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from daemon.core.db import ProjectVersion

log = logging.getLogger("previewd.events")


@dataclass(frozen=True)
class BuildDone:
    """A build ended: its version is deployed, failed, or deploying while the platform confirms."""

    version: ProjectVersion


@dataclass(frozen=True)
class DeploySettled:
    """A deployment awaiting the platform's confirmation settled (`state`: deployed or failed; `via`: webhook or
    poll)."""

    version_id: str
    state: str
    via: str


@dataclass(frozen=True)
class ChecksRecorded:
    """A version's checks (typecheck, lint) were recorded on its row."""

    version: ProjectVersion


@dataclass(frozen=True)
class RepairEnded:
    """A repair loop ended (daemon/intake/repair.py): `version` is its root failure, its `repair` the outcome."""

    version: ProjectVersion


Event = BuildDone | DeploySettled | ChecksRecorded | RepairEnded
E = TypeVar("E", BuildDone, DeploySettled, ChecksRecorded, RepairEnded)


class Events:
    """Subscribers by event type; `publish` calls each, and a failing one never fails the publisher."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        """Call `handler` with every published event of type `kind`; the same handler subscribed twice runs
        once."""
        with self._lock:
            handlers = self._handlers.setdefault(kind, [])
            if handler not in handlers:
                handlers.append(handler)

    def unsubscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        """Stop calling `handler` for `kind` (nothing when it was not subscribed)."""
        with self._lock:
            handlers = self._handlers.get(kind, [])
            if handler in handlers:
                handlers.remove(handler)

    def handlers(self, kind: type[Event]) -> list[Callable[[Any], None]]:
        """The handlers subscribed to `kind`, in order (a copy)."""
        with self._lock:
            return list(self._handlers.get(kind, ()))

    def publish(self, event: Event) -> None:
        """Hand `event` to every handler of its type, in order; a handler that raises is logged, the rest still
        run, and the publisher never sees the error."""
        for handler in self.handlers(type(event)):
            try:
                handler(event)
            except Exception:
                log.exception("%s handler %r failed", type(event).__name__, handler)
