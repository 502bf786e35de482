"""Waiting for a version to finish: API requests await a wake-up from the worker instead of polling the database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class Waiters:
    """Lets API requests await a version reaching a terminal state without polling the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[str, list[Callable[[], None]]] = {}

    def notify(self, version_id: str) -> None:
        with self._lock:
            callbacks = self._callbacks.pop(version_id, [])
        for cb in callbacks:
            cb()

    async def wait(self, version_id: str, timeout: float, is_done: Callable[[], bool]) -> bool:
        """True when the version finished within timeout."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: None if fut.done() else fut.set_result(None))

        with self._lock:
            self._callbacks.setdefault(version_id, []).append(wake)
        try:
            if is_done():
                return True
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return is_done()
        finally:
            with self._lock:
                cbs = self._callbacks.get(version_id)
                if cbs and wake in cbs:
                    cbs.remove(wake)
