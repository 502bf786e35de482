"""A build log as the dashboard shows it: escape sequences stripped, the first error line marked, whether it was cut;
the live stream stripped the same way."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from litestar.response import ServerSentEventMessage

from daemon.core import logtext
from daemon.core.db import ProjectVersion


@dataclass
class LogView:
    """The log's text around its first error line (`error` is None when no line looks like one)."""

    before: str
    error: str | None
    after: str
    cut: bool  # the page shows only the last part of a longer log

    @property
    def empty(self) -> bool:
        return not (self.before or self.error or self.after)


def log_view(data: bytes, size: int) -> LogView:
    """The view of a stored log read as (bytes, whole size): `cut` compares bytes with bytes."""
    lines = logtext.strip_ansi(data.decode("utf-8", "replace")).split("\n")
    i = logtext.first_error(lines)
    cut = size > len(data)
    if i is None:
        return LogView("\n".join(lines), None, "", cut)
    # The newlines stay in the plain parts, so the <pre> reads exactly as the stripped log.
    before = "".join(line + "\n" for line in lines[:i])
    after = "".join("\n" + line for line in lines[i + 1:])
    return LogView(before, lines[i], after, cut)


async def readable(events: AsyncGenerator[ServerSentEventMessage, None],
                   phase: Callable[[], tuple[str, float] | None] = lambda: None,
                   ) -> AsyncGenerator[ServerSentEventMessage, None]:
    """The log stream with escape sequences stripped from its lines (status events and comments pass as they are),
    and a `step` event ({"step", "since"}: the phase and its start in unix seconds) before the first message that
    finds the build in a new phase; closing it closes the stream underneath, which frees its slot."""
    last: tuple[str, float] | None = None
    try:
        async for msg in events:
            now = phase()
            if now is not None and now != last and msg.event != "status":
                last = now
                yield ServerSentEventMessage(data=json.dumps({"step": now[0], "since": now[1]}), event="step")
            if msg.event is None and isinstance(msg.data, str):
                msg.data = logtext.strip_ansi(msg.data)
            yield msg
    finally:
        await events.aclose()


def rollback_note(v: ProjectVersion) -> str | None:
    """What a rollback version did, for its page, when no build log says it (an artifact redeploy writes none)."""
    if v.kind != "rollback" or not v.rollback_of:
        return None
    short = v.rollback_of[-8:]
    if v.status == "failed":
        return f"Rollback of {short}: the redeploy failed, {logtext.one_line(v.failure_message or '') or 'no detail'}"
    if v.status in ("queued", "building"):
        return f"Rollback of {short}: no artifact to redeploy, so its sources are rebuilt"
    if v.status == "deploying":
        return f"Rollback of {short}: its artifact is being redeployed"
    return f"Rollback of {short}: its artifact was redeployed as is, so nothing was built"
