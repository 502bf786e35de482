"""Daemon logging: JSON lines (plain text on a terminal) with version, project and request ids; secrets redacted."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

version_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("version_id", default=None)
project_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("project_id", default=None)
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VARS = {"version_id": version_id, "project_id": project_id, "request_id": request_id}
# Request ids: a random per-process prefix and a counter, unique without a urandom call per request.
_RID_PREFIX = uuid.uuid4().hex[:8]
_rid_counter = itertools.count(1)


@contextlib.contextmanager
def bind(**ids: str | None) -> Iterator[None]:
    """Attach ids (version_id, project_id, request_id) to every log record made inside the block."""
    tokens = []
    for name, value in ids.items():
        if name not in _VARS:
            raise ValueError(f"unknown log context {name!r}; use {', '.join(_VARS)}")
        tokens.append((_VARS[name], _VARS[name].set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record and replaces any secret in the message with [redacted]."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        if self.secrets:
            text = record.getMessage()
            clean = text
            for s in self.secrets:
                clean = clean.replace(s, "[redacted]")
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            exc = record.exc_text
            if exc:
                for s in self.secrets:
                    exc = exc.replace(s, "[redacted]")
                record.exc_text = exc
            if clean != text:
                record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the bound ids when set, exc when any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _VARS:
            value = getattr(record, name, None)
            if value:
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, ids appended in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{n}={getattr(record, n)}" for n in _VARS if getattr(record, n, None))
        if not ids:
            return line
        first, nl, rest = line.partition("\n")
        return f"{first} [{ids}]{nl}{rest}"


def configure(level: str = "info", *, secrets: Iterable[str] = (), json_lines: bool | None = None,
              stream: IO[str] | None = None) -> logging.Handler:
    """Install one handler on the root logger (replacing earlier ones); JSON unless the stream is a TTY."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter(secrets))
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

        token = request_id.set(rid)  # the ASGI server runs each request in its own task (own context)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
