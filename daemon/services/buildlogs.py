"""Build logs: a version's stored log (whole, or its tail under a cap) and its live stream as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from litestar.response import ServerSentEventMessage

from daemon.core import logtext, versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import Unavailable
from daemon.project.buildlog import BuildLog
from daemon.services.streams import StreamSlot, StreamSlots
from daemon.services.telemetry import Telemetry

if TYPE_CHECKING:
    from daemon.runtime import Runtime

KEEPALIVE_S = 15.0
CAUSE_CACHE = 4096
CAUSE_TAIL_BYTES = 8 * 1024  # a failure's error lines are at the end: tsc and vite print a few KB at most


def read_log(path: Path, cap: int) -> tuple[bytes, int]:
    """A build log's bytes, or its last `cap` bytes (from a line start) when longer; and the whole size."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= cap:
                return fh.read(cap), size
            fh.seek(size - cap)
            data = fh.read(cap)
    except FileNotFoundError:
        return b"", 0
    cut = data.find(b"\n")
    return (data[cut + 1:] if 0 <= cut < len(data) - 1 else data), size


def attach(blog: BuildLog, fn: Callable[[str | None], None]) -> tuple[list[str], Callable[[], None]] | None:
    """The lines written so far and a subscription to every later one (see BuildLog.attach)."""
    return blog.attach(fn)


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _status_event(v: ProjectVersion) -> ServerSentEventMessage:
    body = {"versionId": v.version_id, "status": v.status, "failureReason": v.failure_reason,
            "previewUrl": v.preview_url}
    return ServerSentEventMessage(data=json.dumps(body), event="status")


class BuildLogs:
    """One path to a build's log for the API and the dashboard: the same caps, the same stream."""

    def __init__(self, rt: Runtime, slots: StreamSlots, telemetry: Telemetry) -> None:
        self._rt = rt
        self.slots = slots  # the open streams, capped in total and per IP
        self._telemetry = telemetry
        # A failed version's row and log are final: its cause is worked out once (a timeline shows up to 50 of them).
        self._causes: dict[str, str] = {}

    def read(self, version_id: str) -> tuple[bytes, int]:
        """The version's log, or its last [server] max_log_bytes, and the whole size (404 for an unknown version)."""
        versions.get(version_id)
        return read_log(self._rt.layout.log_path(version_id), self._rt.cfg.server.max_log_bytes)

    def phase(self, version_id: str) -> tuple[str, float] | None:
        """The phase a build running here is in and since when (unix seconds); None when it is not running here."""
        blog = self._rt.live_logs.get(version_id)
        return getattr(blog, "phase", None) if blog is not None else None

    def cause(self, v: ProjectVersion) -> str:
        """One line saying why a failed version failed (its message, or its log's first error line); "" for others."""
        if v.status != "failed":
            return ""
        key = f"{v.version_id} {v.failure_reason} {v.failure_message}"  # a row rewritten later is worked out anew
        if (known := self._causes.get(key)) is not None:
            return known
        tail, _ = read_log(self._rt.layout.log_path(v.version_id), CAUSE_TAIL_BYTES)
        found = logtext.cause(v.failure_reason, v.failure_message, tail.decode("utf-8", "replace"))
        if len(self._causes) >= CAUSE_CACHE:
            self._causes.clear()  # a bound, not an LRU: refilling costs one read per failed row shown
        self._causes[key] = found
        return found

    def stream(self, version_id: str, ip: str, last_event_id: str = "") -> AsyncGenerator[ServerSentEventMessage, None]:
        """The log stream of a version the caller may read, under the stream caps (503 past them, before the stream
        starts); `last_event_id` (a line number) resumes after that line."""
        try:
            slot = self.slots.acquire(ip)
        except Unavailable as exc:
            self._telemetry.stream_refused(exc.extra.get("cap", "total"))
            raise
        skip = int(last_event_id) if last_event_id.isdigit() else 0
        return self.events(version_id, skip, slot)

    async def events(self, version_id: str, skip: int,
                     slot: StreamSlot | None = None) -> AsyncGenerator[ServerSentEventMessage, None]:
        """Stored lines, then live lines as the build writes them, then one `status` event.

        A queued build has no log yet: the stream waits on the live-log table, which wakes it the moment the worker
        opens the log (or the build ends), with a keepalive comment every KEEPALIVE_S meanwhile.
        """
        runtime = self._rt
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def on_line(text: str | None) -> None:  # runs on the build thread
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown); the build must not notice
                loop.call_soon_threadsafe(lines.put_nowait, text)

        attached: tuple[list[str], Callable[[], None]] | None = None
        try:
            while True:
                woke: asyncio.Future[None] = loop.create_future()

                def wake(fut: asyncio.Future[None] = woke) -> None:  # runs on the build thread
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(lambda: None if fut.done() else fut.set_result(None))

                unwatch = runtime.live_logs.watch(version_id, wake)  # before the checks below, so no wake is missed
                try:
                    blog = runtime.live_logs.get(version_id)
                    if blog is not None:
                        attached = await asyncio.to_thread(attach, blog, on_line)
                        if attached is not None:
                            break
                    v = await asyncio.to_thread(versions.get, version_id)
                    if v.status not in ("queued", "building") and runtime.live_logs.get(version_id) is None:
                        break  # finished (or deploying without a build thread): the stored log is complete
                    try:
                        await asyncio.wait_for(woke, KEEPALIVE_S)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment=f"waiting, {v.status}")
                finally:
                    unwatch()
            if attached is None:
                path = runtime.layout.log_path(version_id)
                text = await asyncio.to_thread(lambda: path.read_text(encoding="utf-8", errors="replace")
                                               if path.exists() else "")
                for i, line in enumerate(_lines(text), 1):
                    if i > skip:
                        yield ServerSentEventMessage(data=line, id=i)
                yield _status_event(await asyncio.to_thread(versions.get, version_id))
                return
            stored, off = attached
            try:
                count = 0
                for line in stored:
                    count += 1
                    if count > skip:
                        yield ServerSentEventMessage(data=line, id=count)
                while True:
                    try:
                        item = await asyncio.wait_for(lines.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ServerSentEventMessage(comment="keepalive")
                        continue
                    if item is None:
                        break
                    count += 1
                    if count > skip:
                        yield ServerSentEventMessage(data=item, id=count)
                yield _status_event(await asyncio.to_thread(versions.get, version_id))
            finally:  # also on a client disconnect (the stream is cancelled)
                off()
        finally:
            if slot is not None:
                slot.release()
