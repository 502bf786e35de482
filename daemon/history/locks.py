"""Per-repository locks: one writer at a time, readers alongside it, prune alone."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RepoLock:
    """A writer mutex plus a shared/exclusive lock.

    Snapshots only add objects and move refs atomically, so readers may run beside them; they take
    `writing()` to serialise with each other. Prune deletes pack files, so it takes `exclusive()`.
    The writer lock is re-entrant, so a caller may hold `writing()` around several writes (snapshot the
    output, slide the window, prune, export a pack) and no other writer gets in between.
    """

    def __init__(self) -> None:
        self._writer = threading.RLock()
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold while reading objects."""
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while adding objects or moving refs."""
        with self._writer:
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold while removing objects: no reader or other writer runs meanwhile."""
        with self._writer:
            with self._cond:
                self._exclusive = True
                self._cond.wait_for(lambda: self._readers == 0)
            try:
                yield
            finally:
                with self._cond:
                    self._exclusive = False
                    self._cond.notify_all()


_registry: dict[str, RepoLock] = {}
_registry_guard = threading.Lock()


def lock_for(path: Path) -> RepoLock:
    """The process-wide lock of the repository at `path` (same object for every alias of the path)."""
    key = os.path.realpath(path)
    with _registry_guard:
        lock = _registry.get(key)
        if lock is None:
            lock = _registry[key] = RepoLock()
        return lock
