"""The logs of builds running now (BuildLog by version id), telling watchers the moment one opens or closes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LiveLogs(dict[str, Any]):
    """A dict the pipeline fills (`live[vid] = log`, `live.pop(vid)`); a log stream waiting on a queued build is
    woken by the write itself instead of polling for it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._watchers: dict[str, list[Callable[[], None]]] = {}

    def __setitem__(self, version_id: str, blog: Any) -> None:  # a daemon.project.buildlog.BuildLog
        super().__setitem__(version_id, blog)
        self._wake(version_id)

    def pop(self, version_id: str, *default: Any) -> Any:
        value = super().pop(version_id, *default)
        self._wake(version_id)
        return value

    def watch(self, version_id: str, fn: Callable[[], None]) -> Callable[[], None]:
        """Call fn (once, on the writer's thread) when a log for version_id opens or closes; returns an unwatch."""
        with self._lock:
            self._watchers.setdefault(version_id, []).append(fn)

        def off() -> None:
            with self._lock:
                fns = self._watchers.get(version_id)
                if fns and fn in fns:
                    fns.remove(fn)
                    if not fns:
                        del self._watchers[version_id]

        return off

    def _wake(self, version_id: str) -> None:
        with self._lock:
            fns = self._watchers.pop(version_id, [])
        for fn in fns:
            fn()
