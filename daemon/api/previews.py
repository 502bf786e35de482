"""Host-based preview serving: an ASGI wrapper serving `previews/<deploymentId>/`, passing the rest on."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from daemon.deployers.localfiles import DIR_FLAGS as _DIR_FLAGS
from daemon.deployers.localfiles import BadPath, content_type_for, is_hashed_asset, segments
from daemon.deployers.localfiles import Found as _Found
from daemon.deployers.localfiles import resolve as _resolve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Same rule as the deployer's ids (a DNS label).
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
IMMUTABLE = b"public, max-age=31536000, immutable"
NO_CACHE = b"no-cache"
CHUNK = 256 * 1024
_HOST_CACHE_MAX = 4096
# What a Host may be (RFC 9110 uri-host, as far as a preview daemon needs): DNS names of 1-63 character labels
# (an optional trailing dot) or a bracketed IPv6 literal, then an optional decimal port. Nothing else is routed.
_NAME_HOST_RE = re.compile(r"((?:[a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63})\.?(?::([0-9]{1,5}))?")
_IPV6_HOST_RE = re.compile(r"\[([0-9a-f:.]{2,45})\](?::([0-9]{1,5}))?")
BAD_HOST = "\x00bad-host"  # never a label: the marker of a malformed Host (400 before any routing)
_MISS = object()

__all__ = ["content_type_for", "host_label", "is_hashed_asset", "make_preview_asgi", "make_public_asgi"]


def host_label(host: str, preview_domain: str) -> str | None:
    """The deployment id in a Host header value `<id>.<preview_domain>[:port]`, or None for any other host."""
    suffix = "." + preview_domain.strip(".").lower()
    return _label_of(host.encode("latin-1"), suffix)


def _label_of(raw_host: bytes, suffix: str) -> str | None:
    found = _classify(raw_host, suffix)
    return found if found and found != BAD_HOST else None


def _classify(raw_host: bytes, suffix: str) -> str | None:
    """The deployment label of a preview host; "" for a host under the preview domain that is no valid label
    (`a.b.localhost`, `-x.localhost`: answered 404, never passed to the API); BAD_HOST for a Host that is not
    DNS labels with an optional decimal port, nor a bracketed IPv6 literal (`x.localhost:1:2`, `[x].localhost`:
    answered 400, never routed); None for any other host."""
    host = raw_host.decode("latin-1").lower()
    if len(host) > 261:  # 253 for the name, 1 for a trailing dot, 6 for a port, 1 spare
        return BAD_HOST
    ipv6 = _IPV6_HOST_RE.fullmatch(host)
    if ipv6 is not None:  # an IPv6 literal is never a preview host, but it must be one
        try:
            ipaddress.IPv6Address(ipv6.group(1))
        except ValueError:
            return BAD_HOST
        return None if _port_ok(ipv6.group(2)) else BAD_HOST
    named = _NAME_HOST_RE.fullmatch(host)
    if named is None or len(named.group(1)) > 253 or not _port_ok(named.group(2)):
        return BAD_HOST
    name = named.group(1)
    if not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return label if _LABEL_RE.match(label) else ""


def _port_ok(port: str | None) -> bool:
    return port is None or int(port) <= 65535


class PreviewServer:
    """ASGI app: Host `<deploymentId>.<preview_domain>` gets static files; any other host under the preview domain
    gets 404; the rest goes to `app` (none on the public listener: 404 there too)."""

    def __init__(self, app: ASGIApp | None, previews_dir: Path, preview_domain: str,
                 resolver: Callable[[str], str | None] | None = None) -> None:
        self.app = app
        # a fleet droplet's resolver (daemon/publish/previewfetch.py): alias hosts, and deployments built elsewhere
        self.resolver = resolver
        self.root = os.path.realpath(previews_dir)
        self.suffix = "." + preview_domain.strip(".").lower()
        self._hosts: dict[bytes, str | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            label = self._label(scope)
            if label is not None or self.app is None:
                if kind != "http":
                    await send({"type": "websocket.close", "code": 1008})
                elif label == BAD_HOST:
                    await _error(send, 400, "bad_host", "the Host header is not a DNS name with an optional port")
                elif label:
                    await self._serve(label, scope, send)
                else:  # under the preview domain (or on the public listener) but no deployment: never the API
                    await _error(send, 404, "deployment_not_found", "no preview deployment at this host")
                return
        if self.app is None:  # lifespan on the public listener: nothing to start
            if kind == "lifespan":
                await _lifespan_noop(receive, send)
            return
        await self.app(scope, receive, send)

    def _label(self, scope: Scope) -> str | None:
        """The one check every request pays: find Host, then a dict lookup for hosts seen before.
        A label, "" (under the preview domain, no valid label), BAD_HOST or None (not a preview host)."""
        host = None
        for key, value in scope["headers"]:
            if key == b"host":
                if host is not None:  # two Host headers: which one a proxy routed by is anyone's guess
                    return BAD_HOST
                host = value
        if host is None:
            return None
        label = self._hosts.get(host, _MISS)
        if label is _MISS:
            label = _classify(host, self.suffix)
            if len(self._hosts) >= _HOST_CACHE_MAX:  # Host is client-chosen; keep the cache bounded
                self._hosts.clear()
            self._hosts[host] = label
        return label  # type: ignore[return-value]

    async def _serve(self, label: str, scope: Scope, send: Send) -> None:
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            await _error(send, 405, "method_not_allowed", "previews answer GET and HEAD only", allow=True)
            return
        try:
            segs = segments(scope["path"])
        except BadPath as exc:
            await _error(send, 400, "bad_path", str(exc))
            return
        try:
            if self.resolver is not None and "--" in label:
                raise FileNotFoundError(label)  # a live alias: always resolved to the live deployment now
            dfd = os.open(os.path.join(self.root, label), _DIR_FLAGS)
        except OSError:
            target = await asyncio.to_thread(self.resolver, label) if self.resolver is not None else None
            try:
                if target is None:
                    raise FileNotFoundError(label)
                dfd = os.open(os.path.join(self.root, target), _DIR_FLAGS)
            except OSError:
                await _error(send, 404, "deployment_not_found", f"no preview deployment {label!r}")
                return
        try:
            found = _resolve(dfd, segs)
        finally:
            os.close(dfd)
        if found is None:
            await _error(send, 404, "not_found", "no such file in this deployment")
            return
        try:
            await _send_file(found, scope, send, head=method == "HEAD")
        finally:
            os.close(found.fd)


def make_preview_asgi(app: ASGIApp, previews_dir: Path, preview_domain: str,
                      resolver: Callable[[str], str | None] | None = None) -> ASGIApp:
    """Wrap the API app so host `<deploymentId>.<preview_domain>` serves `previews_dir/<deploymentId>/`."""
    return PreviewServer(app, previews_dir, preview_domain, resolver)


def make_public_asgi(previews_dir: Path, preview_domain: str,
                     resolver: Callable[[str], str | None] | None = None) -> ASGIApp:
    """The public listener's app: previews by Host, 404 for everything else (no API behind it)."""
    return PreviewServer(None, previews_dir, preview_domain, resolver)


async def _lifespan_noop(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _etag_matches(header: bytes, etag: bytes) -> bool:
    if header.strip() == b"*":
        return True
    for tag in header.split(b","):
        tag = tag.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


async def _send_file(found: _Found, scope: Scope, send: Send, head: bool) -> None:
    name = found.rel.rsplit("/", 1)[-1]
    headers = [
        (b"etag", found.etag),
        (b"cache-control", IMMUTABLE if is_hashed_asset(found.rel) else NO_CACHE),
        (b"x-content-type-options", b"nosniff"),
    ]
    for key, value in scope["headers"]:
        if key == b"if-none-match" and _etag_matches(value, found.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
    headers.append((b"content-type", content_type_for(name).encode("latin-1")))
    headers.append((b"content-length", str(found.size).encode("ascii")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if head or found.size == 0:
        await send({"type": "http.response.body", "body": b""})
        return
    if found.size <= CHUNK:
        # Small files (nearly every asset) are read inline: one pread from the page cache beats a thread hop.
        body = os.pread(found.fd, found.size, 0)
        await send({"type": "http.response.body", "body": body})
        return
    loop = asyncio.get_running_loop()
    offset = 0
    while offset < found.size:
        chunk = await loop.run_in_executor(None, os.pread, found.fd, min(CHUNK, found.size - offset), offset)
        if not chunk:  # the file shrank under us; stop rather than spin
            break
        offset += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": offset < found.size})
    if offset < found.size:
        await send({"type": "http.response.body", "body": b""})


async def _error(send: Send, status: int, code: str, message: str, allow: bool = False) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", NO_CACHE),
    ]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
