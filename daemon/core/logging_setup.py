"""Daemon logging: JSON lines (plain text on a terminal) with version, project and request ids; secrets redacted.

structlog does the work: its context-local variables carry the ids, its ProcessorFormatter turns every stdlib
record into the line. What stays here is the line's exact shape (ts, level, logger, msg, ids, exc) and redaction.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, get_contextvars, reset_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

IDS = ("version_id", "project_id", "request_id")
# Request ids: a random per-process prefix and a counter, unique without a urandom call per request.
_RID_PREFIX = uuid.uuid4().hex[:8]
_rid_counter = itertools.count(1)


@contextlib.contextmanager
def bind(**ids: str | None) -> Iterator[None]:
    """Attach ids (version_id, project_id, request_id) to every log record made inside the block."""
    unknown = [name for name in ids if name not in IDS]
    if unknown:
        raise ValueError(f"unknown log context {unknown[0]!r}; use {', '.join(IDS)}")
    with bound_contextvars(**ids):
        yield


def _shape(_logger: WrappedLogger, _method: str, ed: EventDict) -> EventDict:
    """ts, level, logger, msg, the bound ids when set, exc when any: in that order, nothing else."""
    record: logging.LogRecord = ed["_record"]
    out: EventDict = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": ed["level"],
        "logger": ed["logger"],
        "msg": ed["event"],
    }
    bound = get_contextvars()
    for name in IDS:
        if bound.get(name):
            out[name] = bound[name]
    if ed.get("exception"):
        out["exc"] = ed["exception"]
    return out


def _redactor(secrets: Iterable[str]) -> Processor:
    """Replaces every secret (4 characters or more) in the message and the traceback with [redacted]."""
    words = [s for s in secrets if s and len(s) >= 4]

    def redact(_logger: WrappedLogger, _method: str, ed: EventDict) -> EventDict:
        for key in ("msg", "exc"):
            if key in ed and words:
                for s in words:
                    ed[key] = ed[key].replace(s, "[redacted]")
        return ed

    return redact


def _text(_logger: WrappedLogger, _method: str, ed: EventDict) -> str:
    """The message with the ids in brackets at the end of its first line, then the traceback."""
    first, nl, rest = ed["msg"].partition("\n")
    ids = " ".join(f"{n}={ed[n]}" for n in IDS if n in ed)
    line = f"{first} [{ids}]{nl}{rest}" if ids else ed["msg"]
    return f"{line}\n{ed['exc']}" if "exc" in ed else line


def formatter(*, json_lines: bool, secrets: Iterable[str] = ()) -> logging.Formatter:
    """A stdlib formatter: one JSON object per line, or readable lines for a terminal (ids in brackets)."""
    chain: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.format_exc_info,
        _shape,
        _redactor(secrets),
    ]
    if json_lines:
        return structlog.stdlib.ProcessorFormatter(
            processors=[*chain, structlog.processors.JSONRenderer(ensure_ascii=False)])
    return structlog.stdlib.ProcessorFormatter(processors=[*chain, _text], keep_stack_info=True,
                                               fmt="%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure(level: str = "info", *, secrets: Iterable[str] = (), json_lines: bool | None = None,
              stream: IO[str] | None = None) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones); JSON unless the stream is a TTY."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(json_lines=json_lines, secrets=secrets))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


class RequestIdMiddleware:
    """ASGI wrapper: a request id per HTTP request (the caller's x-request-id when sane), bound for logs, echoed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                given = value.decode("latin-1")
                if 0 < len(given) <= 64 and given.replace("-", "").isalnum():
                    rid = given
                break
        rid = rid or f"{_RID_PREFIX}{next(_rid_counter):08x}"
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Any) -> None:
            if message.get("type") == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        tokens = bind_contextvars(request_id=rid)  # the ASGI server runs each request in its own task (own context)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_contextvars(**tokens)
