"""The fleet's per-project state on one droplet: a catch-up lock per project being admitted, and the holds of
projects whose work continues after their build."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ProjectGuards:
    """The fleet's per-project state on one droplet: a catch-up lock per project being admitted, and the count of
    holds (work continuing after a build). Both maps keep only projects in use: a lock goes when its last user
    leaves, a hold count when it drops to zero."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}
        self.holds: dict[tuple[str, str], int] = {}

    @contextlib.contextmanager
    def catching_up(self, key: tuple[str, str]) -> Iterator[None]:
        """Hold the project's catch-up lock (one admission per project at a time)."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users > 1:
                    self._locks[key] = (lock, users - 1)
                else:
                    del self._locks[key]

    def hold(self, key: tuple[str, str]) -> None:
        """One more piece of work on the project continues after its build."""
        with self._guard:
            self.holds[key] = self.holds.get(key, 0) + 1

    def unhold(self, key: tuple[str, str]) -> None:
        """One piece of work `hold` announced is done (the count goes when it reaches zero)."""
        with self._guard:
            left = self.holds.get(key, 0) - 1
            if left > 0:
                self.holds[key] = left
            else:
                self.holds.pop(key, None)

    def size(self) -> tuple[int, int]:
        """(catch-up locks, held projects): the bound, for tests."""
        with self._guard:
            return len(self._locks), len(self.holds)
