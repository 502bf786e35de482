"""Splits the child's merged stdout/stderr into lines for a callback, with a hard cap on captured bytes."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.result import fmt_bytes

MAX_LINE = 64 * 1024  # a longer run without a newline is delivered in pieces; memory stays flat


class LogSink:
    """Feed raw chunks; complete lines go to `on_line` until `cap` bytes, then one notice and silence."""

    def __init__(self, on_line: Callable[[str], None] | None, cap: int) -> None:
        self.on_line = on_line
        self.cap = cap
        self.captured = 0  # bytes of lines delivered (newline included)
        self.truncated = False
        self._partial = b""

    def feed(self, data: bytes) -> None:
        """Take one chunk read from the pipe."""
        if self.truncated:
            return  # drained and dropped: keeps the child from blocking, costs no memory
        buf = self._partial + data
        lines = buf.split(b"\n")
        self._partial = lines.pop()
        while len(self._partial) > MAX_LINE:
            lines.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        for line in lines:
            if not self._emit(line, len(line) + 1):
                return

    def close(self) -> None:
        """Flush a last line that had no newline."""
        if self._partial and not self.truncated:
            self._emit(self._partial, len(self._partial))
        self._partial = b""

    def _emit(self, line: bytes, size: int) -> bool:
        if self.captured + size > self.cap:
            self.truncated = True
            self._partial = b""
            if self.on_line is not None:
                self.on_line(f"[sandbox] log truncated at {fmt_bytes(self.captured)} "
                             f"(limit {fmt_bytes(self.cap)}); further output dropped")
            return False
        self.captured += size
        if self.on_line is not None:
            self.on_line(line.decode("utf-8", errors="replace"))
        return True
