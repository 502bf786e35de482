"""An ASGI fast path for the hottest read, `GET /projects/{u}/{p}/preview`, answered before the framework runs.

Frontends poll the preview pointer; going through Litestar (routing, parameter parsing, response objects) and a
worker thread for the KV read cost most of each request. When a local KV holds the pointer and can be read
without waiting, this answers with the very bytes the Litestar handler would send; anything else (another
method, a bad id, no pointer in the KV, a remote KV, a busy KV) falls through to the handler, which stays the
documented route in the OpenAPI schema.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from daemon.core.ids import valid_id
from daemon.services.publisher import Publisher

_POINTER = re.compile(r"/projects/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})/preview")
_encode = msgspec.json.Encoder().encode


class PointerFastPath:
    """Wraps the API app; serves pointer reads a local KV can answer at once, passes everything else through."""

    def __init__(self, app: Any, publisher: Publisher) -> None:
        self.app = app
        self.publisher = publisher

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            m = _POINTER.fullmatch(scope["path"])
            if m is not None and valid_id(m.group(1)) and valid_id(m.group(2)):  # else the handler's 400
                ptr = self.publisher.pointer_nowait(m.group(1), m.group(2))
                if ptr is not None:
                    body = _encode(ptr)
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                    return
        await self.app(scope, receive, send)
