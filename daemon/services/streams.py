"""Caps on concurrent log streams (SSE): per client IP and in total, so streams cannot pile up without bound."""

from __future__ import annotations

import threading

from daemon.core.errors import Unavailable

RETRY_AFTER_S = 10


class StreamSlot:
    """One open stream's place; released exactly once (by the stream's end, or when it is dropped unstarted)."""

    def __init__(self, owner: StreamSlots, ip: str) -> None:
        self._owner = owner
        self._ip = ip
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner._release(self._ip)

    def __del__(self) -> None:  # a response never sent never runs the stream's finally: give the place back
        self.release()


class StreamSlots:
    """Counts open streams; `acquire` refuses past either cap with 503 and Retry-After."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self._open = 0
        self._by_ip: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, ip: str) -> StreamSlot:
        with self._lock:
            if self._open >= self.total:
                raise Unavailable(f"too many log streams open ({self.total}); retry later", code="too_many_streams",
                                  retry_after=RETRY_AFTER_S, cap="total")
            if self._by_ip.get(ip, 0) >= self.per_ip:
                raise Unavailable(f"too many log streams open from your address ({self.per_ip}); close one or "
                                  "retry later", code="too_many_streams", retry_after=RETRY_AFTER_S, cap="per_ip")
            self._open += 1
            self._by_ip[ip] = self._by_ip.get(ip, 0) + 1
        return StreamSlot(self, ip)

    def _release(self, ip: str) -> None:
        with self._lock:
            self._open -= 1
            left = self._by_ip.get(ip, 1) - 1
            if left > 0:
                self._by_ip[ip] = left
            else:
                self._by_ip.pop(ip, None)

    @property
    def open(self) -> int:
        with self._lock:
            return self._open
