"""The render check's one origin: every request the page makes is paused in the browser (DevTools Fetch, on the
browser target, so frames, workers and service workers alike) and answered by the daemon when it is for the
deployment's origin, refused otherwise. The browser itself has no route anywhere (its own network namespace).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx

from daemon.deployers.localfiles import DIR_FLAGS, BadPath, content_type_for, resolve, segments

log = logging.getLogger("previewd.render")

MAX_BODY = 16 * 2**20     # one response handed to the browser; a bigger file fails that request, named
MAX_BLOCKED = 50          # blocked requests kept per report
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# httpx has already undone the transfer and content encodings; the browser gets the plain body.
_DROP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Answer:
    """What the origin answers one request with."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class OriginError(Exception):
    """The origin could not answer; `reason` is a DevTools Network.ErrorReason (Failed, ConnectionRefused, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OriginSource(Protocol):
    """Answers the requests the page makes to the deployment's own origin."""

    def get(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        """`path` is the URL's path and query as the browser sent it (percent-encoded)."""
        ...

    def close(self) -> None: ...


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port made explicit; what "same origin" compares."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, -1)


class DirSource:
    """A deployment the daemon holds: its directory answers like the preview server does (no link followed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if method not in ("GET", "HEAD"):
            return _json(405, "previews answer GET and HEAD only")
        try:
            segs = segments(unquote(path.split("?", 1)[0]))
        except BadPath as exc:
            return _json(400, str(exc))
        try:
            dfd = os.open(self.root, DIR_FLAGS)
        except OSError:
            return _json(404, "no such deployment")
        try:
            found = resolve(dfd, segs)
        finally:
            os.close(dfd)
        if found is None:
            return _json(404, "no such file in this deployment")
        try:
            if found.size > MAX_BODY:
                raise OriginError("Failed", f"{found.rel} is {found.size} bytes, over the render check's "
                                            f"{MAX_BODY} per file")
            body = b"" if method == "HEAD" else _pread_all(found.fd, found.size)
        finally:
            os.close(found.fd)
        return Answer(200, [("Content-Type", content_type_for(found.rel.rsplit("/", 1)[-1])),
                            ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")], body)

    def close(self) -> None:
        pass


class HttpSource:
    """A deployment the daemon does not hold (a remote platform's, such as Pages): fetched from its origin by
    the daemon. Redirects go back to the browser, whose next request is judged again; bodies are capped.
    `connect_to` (scheme://host:port) is where to connect when the page's origin is a name only the server
    knows (the Host header carries it)."""

    def __init__(self, origin_url: str, *, connect_to: str | None = None, timeout_s: float = 30) -> None:
        parts = urlsplit(origin_url)
        self.host = parts.netloc
        name = (parts.hostname or "").lower().rstrip(".")
        if connect_to is None and (name == "localhost" or name.endswith(".localhost")):
            # Browsers resolve *.localhost to loopback themselves (RFC 6761); the system resolver may not.
            connect_to = f"{parts.scheme}://127.0.0.1" + (f":{parts.port}" if parts.port else "")
        self.base = (connect_to or f"{parts.scheme}://{parts.netloc}").rstrip("/")
        self.client = httpx.Client(follow_redirects=False, trust_env=False, timeout=timeout_s)

    def get(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if method not in ("GET", "HEAD"):
            return _json(405, "the render check loads pages: GET and HEAD only")
        send = {"host": self.host, "accept": headers.get("Accept", "*/*"), "accept-encoding": "gzip, deflate"}
        try:
            with self.client.stream(method, self.base + (path if path.startswith("/") else "/" + path),
                                    headers=send) as resp:
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise OriginError("Failed", f"{path} is over the render check's {MAX_BODY} bytes per file")
                kept = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in _DROP_HEADERS]
                return Answer(resp.status_code, kept, bytes(body))
        except httpx.ConnectError as exc:
            raise OriginError("ConnectionRefused", f"cannot connect: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise OriginError("TimedOut", f"no answer in time: {exc}") from exc
        except httpx.HTTPError as exc:
            raise OriginError("Failed", f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self.client.close()


class Gate:
    """Answers the browser's paused requests: the origin's from `source` on worker threads (a slow origin never
    stalls the DevTools loop), every other one refused (BlockedByClient) and recorded in `blocked`."""

    def __init__(self, origin_url: str, source: OriginSource, send: Callable[[str, dict[str, Any]], object],
                 workers: int = 4) -> None:
        self.origin = origin_of(origin_url)
        self.source = source
        self.send = send
        self.blocked: list[str] = []
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render-origin")

    def paused(self, params: dict[str, Any]) -> None:
        """One Fetch.requestPaused: answered, or refused at once."""
        req = params.get("request", {})
        url = str(req.get("url", ""))
        if origin_of(url) == self.origin:
            self._pool.submit(self._answer, params)
            return
        entry = _clip(f"{req.get('method', 'GET')} {url} ({params.get('resourceType', '?')})")
        with self._lock:
            if len(self.blocked) < MAX_BLOCKED and entry not in self.blocked:
                self.blocked.append(entry)
        self._send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"})

    def _answer(self, params: dict[str, Any]) -> None:
        req = params.get("request", {})
        parts = urlsplit(str(req.get("url", "")))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            ans = self.source.get(str(req.get("method", "GET")), path, req.get("headers") or {})
        except OriginError as exc:
            with self._lock:
                self.notes.append(_clip(f"{path}: {exc}"))
            self._send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": exc.reason})
            return
        except Exception as exc:  # the origin failing is that request failing, never the check
            if not self._closed:  # after close, a source torn down under a slow request is no news
                log.warning("render origin could not answer %s", path, exc_info=True)
            self._send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "Failed"})
            with self._lock:
                self.notes.append(_clip(f"{path}: {type(exc).__name__}"))
            return
        self._send("Fetch.fulfillRequest", {
            "requestId": params["requestId"], "responseCode": ans.status,
            "responseHeaders": [{"name": k, "value": v} for k, v in ans.headers],
            "body": base64.b64encode(ans.body).decode("ascii")})

    def _send(self, method: str, params: dict[str, Any]) -> None:
        try:
            self.send(method, params)
        except Exception:  # the browser is gone: nothing waits for this answer any more
            log.debug("render gate: %s not delivered", method, exc_info=True)

    def close(self) -> None:
        """Stop answering; a worker still waiting on the origin ends at its own timeout."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.source.close()


def _pread_all(fd: int, size: int) -> bytes:
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:  # the file shrank: serve what is there
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _json(status: int, message: str) -> Answer:
    body = ('{"error": {"message": "' + message.replace('"', "'") + '"}}').encode()
    return Answer(status, [("Content-Type", "application/json"), ("Cache-Control", "no-cache")], body)


def _clip(s: str, n: int = 500) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
