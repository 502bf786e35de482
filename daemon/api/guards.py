"""Who may call what: the `signed`, `reader` and `ops_reader` guards, read-token scopes, and the caller's address.

Order inside every guard: the signature (or token) is checked first, in memory; only a request that passed it
costs a database write (its nonce, and for the signed routes a count against the per-IP cap). A failure is
counted in an in-memory window per IP instead, so junk never locks out a valid caller on the same address.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from daemon.core import diskspace, nonces, ratelimit, signing
from daemon.core.db import database
from daemon.core.errors import AppError, Forbidden, PayloadTooLarge, RateLimited, Unauthorized
from daemon.services.access import Access, client_ip

Conn = ASGIConnection[Any, Any, Any, Any]
T = TypeVar("T")
FALSE_WORDS = ("", "0", "false", "no", "off")
READ_METHODS = ("GET", "HEAD")


def access(conn: Conn) -> Access:
    """The app's authentication state (guards take no dependencies, so the composition root parks it in app.state)."""
    found: Access = conn.app.state.access
    return found


def _fail(conn: Conn, exc: AppError) -> NoReturn:
    """Count a failed authentication in memory (metric, alert, per-IP window) and refuse the request."""
    gate = access(conn)
    ip = client_ip(conn)
    gate.telemetry.auth_failed(exc.code, ip)
    cap = gate.cfg.rate_limits.failed_auth_per_ip_per_hour
    window = gate.auth_failures
    if window.add(ip, cap) > cap:
        raise RateLimited(f"rate cap reached: failed authentication per IP ({cap} per hour); check the secret and "
                          "the clock", retry_after=window.retry_after(ip), limit=cap) from exc
    raise exc


async def _body(request: Request[Any, Any, Any], gate: Access) -> bytes:
    limit = gate.cfg.server.max_body_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    return body


def _verify(conn: Conn, body: bytes, *, body_only_ok: bool) -> signing.Verified:
    scope = conn.scope
    target = signing.target_of(scope.get("raw_path") or scope["path"].encode("utf-8"), scope.get("query_string", b""))
    method = cast("Request[Any, Any, Any]", conn).method
    return signing.verify_request(access(conn).cfg.secrets.hmac_secret, method, target, body,
                                  conn.headers.get("x-sheen-signature"), conn.headers.get("x-sheen-timestamp"),
                                  body_only_ok=body_only_ok)


def _admit(verified: signing.Verified, bucket: str, cap: int | None) -> None:
    """One transaction: remember a v2 signature (refusing a replay), then count the request against the cap."""
    with database.atomic("IMMEDIATE"):
        if verified.nonce is not None and verified.expires_at is not None \
                and not nonces.remember(verified.nonce, verified.expires_at):
            raise Unauthorized("this signature was already used; sign each request afresh (a new timestamp)",
                               code="signature_replayed")
        if cap is not None:
            ratelimit.hit(bucket, cap, "requests per IP")


async def _signature(conn: Conn, *, body_only_ok: bool, cap: int | None) -> None:
    request: Request[Any, Any, Any] = conn  # type: ignore[assignment]
    body = await _body(request, access(conn))
    try:
        verified = _verify(conn, body, body_only_ok=body_only_ok)
    except Unauthorized as exc:
        _fail(conn, exc)
    try:
        await asyncio.to_thread(_admit, verified, f"ip:{client_ip(conn)}", cap)
    except Unauthorized as exc:
        _fail(conn, exc)
    except Exception as exc:
        if cast("Request[Any, Any, Any]", conn).method not in READ_METHODS \
                or not diskspace.caused_by_full_disk(exc, access(conn).data_dir):
            raise  # a write on a full disk answers 503 disk_full (app's error handler)
        _admit_in_memory(conn, verified, f"ip:{client_ip(conn)}", cap)


def _admit_in_memory(conn: Conn, verified: signing.Verified, bucket: str, cap: int | None) -> None:
    """A read whose nonce (or cap count) could not be written for want of space. Refusing it would turn a full
    disk into an outage of every signed read, though the read itself needs no space; so it is admitted, its
    signature remembered in memory (a replay is still refused by this process until it goes stale) and its cap
    counted in memory. What is lost is only the replay memory across a restart while the disk is full."""
    if verified.nonce is not None and verified.expires_at is not None:
        added = nonces.in_memory.add(verified.nonce, verified.expires_at)
        if added is False:
            _fail(conn, Unauthorized("this signature was already used; sign each request afresh (a new timestamp)",
                                     code="signature_replayed"))
        if added is None:  # memory holds its cap of signatures already: refuse rather than forget a replay
            raise diskspace.disk_full(access(conn).data_dir, what="recording this signature")
    if cap is not None:
        window = access(conn).read_cap_fallback
        if window.add(bucket, cap) > cap:
            raise RateLimited(f"rate cap reached: requests per IP ({cap} per hour)",
                              retry_after=window.retry_after(bucket), limit=cap)


async def signed(connection: Conn, handler: BaseRouteHandler) -> None:
    """Mutating and ops routes: a v2 signature (the seed's body-only form where the route opts in and the config
    allows it), then the per-IP cap unless the route opts out (`opt={"uncapped": True}`)."""
    cfg = access(connection).cfg
    method = cast("Request[Any, Any, Any]", connection).method
    body_only_ok = (bool(handler.opt.get("body_only_signature")) and method == "POST"
                    and cfg.server.accept_body_only_signatures)
    cap = None if handler.opt.get("uncapped") else cfg.rate_limits.per_ip_per_hour
    await _signature(connection, body_only_ok=body_only_ok, cap=cap)


def _bearer(conn: Conn) -> str | None:
    value = conn.headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


async def reader(connection: Conn, _: BaseRouteHandler) -> None:
    """Per-user reads: a v2 signature (any project), or a read token (`?token=` or `Authorization: Bearer`) whose
    project the handler then checks with `check_scope` / `authorize_version`."""
    if connection.headers.get("x-sheen-signature") is not None:
        await _signature(connection, body_only_ok=False, cap=None)
        connection.state.read_scope = None
        return
    token = connection.query_params.get("token") or _bearer(connection)
    if not token:
        _fail(connection, Unauthorized("this route needs a v2 signature or a read token (?token= or "
                                       "Authorization: Bearer)", code="auth_missing"))
    cfg = access(connection).cfg
    try:
        connection.state.read_scope = signing.verify_token(cfg.secrets.hmac_secret, token,
                                                           max_ttl_s=cfg.server.read_token_max_ttl_s)
    except Unauthorized as exc:
        _fail(connection, exc)


async def ops_reader(connection: Conn, handler: BaseRouteHandler) -> None:
    """Metrics and health detail: the scraper's bearer token ([server] metrics_token_env) or a v2 signature.
    With `opt={"detail_param": True}` only a request asking for detail (`?detail=` not false) is checked."""
    if handler.opt.get("detail_param") and \
            str(connection.query_params.get("detail", "")).strip().lower() in FALSE_WORDS:
        return
    expected = access(connection).cfg.secrets.metrics_token
    bearer = _bearer(connection)
    if bearer is not None and expected and hmac.compare_digest(bearer.encode(), expected.encode()):
        return
    if connection.headers.get("x-sheen-signature") is not None:
        await _signature(connection, body_only_ok=False, cap=None)
        return
    if bearer is not None:
        _fail(connection, Unauthorized("wrong bearer token for metrics", code="metrics_token_invalid"))
    _fail(connection, Unauthorized("this route needs the metrics bearer token or a v2 signature",
                                   code="auth_missing"))


# -- read-token scopes ---------------------------------------------------------------------------------------------

def read_scope(conn: Conn) -> tuple[str, str] | None:
    """The (userId, projectId) a token-authorised request may read; None for a signed request (no limit)."""
    scope: tuple[str, str] | None = conn.state.get("read_scope")
    return scope


def check_scope(conn: Conn, user_id: str, project_id: str) -> None:
    """403 when the request's read token is for another project."""
    scope = read_scope(conn)
    if scope is not None and scope != (user_id, project_id):
        _fail(conn, Forbidden(f"the read token is for project {scope[0]}/{scope[1]}, not this one",
                              code="token_scope"))


async def scoped(conn: Conn, version_ids: Sequence[str], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn in a worker thread; for a token-authorised request first check, in that same thread (one hop, not
    two), that each version belongs to the token's project (403 otherwise; an unknown version is left to fn)."""
    scope = read_scope(conn)
    gate = access(conn)

    def work() -> T:
        if scope is not None:
            for version_id in version_ids:
                owner = gate.owner_of(version_id)
                if owner is not None:
                    check_scope(conn, *owner)
        return fn(*args, **kwargs)

    return await asyncio.to_thread(work)
