"""Build logs: one file per version, secrets redacted, capped, with live subscribers for streaming."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path


class BuildLog:
    """Appends lines to logs/<versionId>.log and fans them out to live listeners."""

    def __init__(self, path: Path, redact: Iterable[str] = (), cap_bytes: int = 8 * 2**20) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in close()
        self._redact = [s for s in redact if s and len(s) >= 4]
        self._cap = cap_bytes
        self._written = path.stat().st_size
        self._truncated = False
        self._tail: deque[str] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str | None], None]] = []
        # The build's phase now (generating, installing, building, deploying) and when it began (unix seconds):
        # the dashboard's step progress reads it; never written to the file, so nothing a build prints can fake it.
        self.phase: tuple[str, float] | None = None

    def enter(self, phase: str) -> None:
        """Note that the build moved on to `phase` (a repeat of the current one changes nothing)."""
        if self.phase is None or self.phase[0] != phase:
            self.phase = (phase, time.time())

    def _clean(self, line: str) -> str:
        for secret in self._redact:
            if secret in line:
                line = line.replace(secret, "[redacted]")
        return line.rstrip("\n")

    def line(self, text: str) -> None:
        """Record one line (redacted); past the cap, lines are dropped after one notice."""
        text = self._clean(text)
        with self._lock:
            self._tail.append(text)
            if self._written >= self._cap:
                if not self._truncated:
                    self._truncated = True
                    self._write("[previewd] log cap reached; further lines dropped\n")
                return
            data = text + "\n"
            self._write(data)
            self._written += len(data.encode("utf-8", "replace"))
            listeners = list(self._listeners)
        for fn in listeners:
            fn(text)

    def _write(self, data: str) -> None:
        # A full disk must not turn a log line into an exception in the build (the tail stays in memory).
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError:
            pass

    def step(self, text: str) -> None:
        """A line from the daemon itself, stamped, so steps stand out from tool output."""
        # UTC to the millisecond: the fleet drill orders builds of one project on different droplets by it
        now = time.time()
        self.line(f"[previewd {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}Z] "
                  f"{text}")

    def tail(self, n: int) -> list[str]:
        """The last n lines seen."""
        with self._lock:
            return list(self._tail)[-n:]

    def attach(self, fn: Callable[[str | None], None]) -> tuple[list[str], Callable[[], None]] | None:
        """The lines written so far plus a subscription to every later one, with no gap and no repeat.

        None when the log has already closed (read the file instead).
        """
        with self._lock:
            if self._fh.closed:
                return None
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._listeners.append(fn)

        def off() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        lines = text.split("\n")
        return (lines[:-1] if lines and lines[-1] == "" else lines), off

    def subscribe(self, fn: Callable[[str | None], None]) -> Callable[[], None]:
        """Call fn for each new line (None when the log closes); returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(fn)

        def off() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return off

    def close(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
            self._listeners.clear()
            with contextlib.suppress(OSError):  # a buffered line that a full disk refused
                self._fh.close()
        for fn in listeners:
            fn(None)


def read_tail(path: Path, n: int) -> list[str]:
    """Last n lines of a finished log file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return data.splitlines()[-n:]
