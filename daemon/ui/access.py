"""Who may use the dashboard: a password whose scrypt hash is in config, or a token `daemonctl ui-token` mints.

Sessions and CSRF are Litestar's own middleware (configured in `daemon.ui.router`); this module holds the
credential checks and the guard that sends a signed-out visitor to the sign-in page. The cookie alone is not
enough: it names a row of `ui_sessions` (sign-out deletes it) and the password hash it began under.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler

from daemon.core.db import UiSession, database
from daemon.services.access import Access

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
TOKEN_VERSION = "ui1"
TOKEN_MAX_TTL_S = 30 * 24 * 3600


class SignInRequired(HTTPException):
    """No valid session: the router's handler answers with a redirect to the sign-in page."""

    status_code = 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$<n>$<r>$<p>$<salt>$<hash>` (stdlib hashlib.scrypt) for `[ui] password_hash`."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(stored: str, password: str) -> bool:
    """True when `password` matches the stored hash; False for any malformed hash (never an exception)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not password:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected),
                             maxmem=256 * n * r + 2**20)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _token_mac(secret: str, exp: int) -> str:
    return hmac.new(secret.encode(), f"previewd-ui-token\n{exp}".encode(), hashlib.sha256).hexdigest()


def mint_token(secret: str, ttl_s: int, *, now: float | None = None) -> str:
    """`ui1.<exp>.<hexmac>`: signs one operator in until `exp` (unix seconds); any holder of the HMAC secret can
    compute one, so it is as strong as that secret."""
    if not secret:
        raise ValueError("no HMAC secret configured")
    if not 1 <= ttl_s <= TOKEN_MAX_TTL_S:
        raise ValueError(f"ttl must be 1..{TOKEN_MAX_TTL_S} seconds")
    exp = int((now if now is not None else time.time()) + ttl_s)
    return f"{TOKEN_VERSION}.{exp}.{_token_mac(secret, exp)}"


def check_token(secret: str, token: str, *, now: float | None = None) -> bool:
    """True for an unexpired token this secret minted."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION or not parts[1].isdigit() or len(parts[1]) > 12 or not secret:
        return False
    exp = int(parts[1])
    t = now if now is not None else time.time()
    if not t < exp <= t + TOKEN_MAX_TTL_S:
        return False
    return hmac.compare_digest(_token_mac(secret, exp).encode(), parts[2].encode())


def password_mark(password_hash: str) -> str:
    """What a session remembers of the password it began under: a new `[ui] password_hash` ends every session."""
    return hashlib.sha256(f"previewd-ui-password\n{password_hash}".encode()).hexdigest()[:32]


def open_session(ttl_s: float, password_hash: str, *, now: float | None = None) -> dict[str, Any]:
    """A new session (its row in `ui_sessions`, expired rows dropped): what sign-in writes into the cookie."""
    t = now if now is not None else time.time()
    sid = secrets.token_urlsafe(24)
    with database.atomic():
        UiSession.delete().where(UiSession.exp <= t).execute()
        UiSession.create(sid=sid, exp=t + ttl_s)
    return {"operator": True, "exp": t + ttl_s, "sid": sid, "pw": password_mark(password_hash)}


def end_session(session: dict[str, Any] | None) -> None:
    """Sign-out: the session's row goes, so a copy of the cookie kept anywhere signs no one in any more."""
    sid = session.get("sid") if isinstance(session, dict) else None
    if isinstance(sid, str):
        UiSession.delete().where(UiSession.sid == sid).execute()


def session_valid(session: dict[str, Any] | None, password_hash: str, now: float | None = None) -> bool:
    """A session our sign-in wrote, not expired, not signed out, begun under the current password."""
    if not session or session.get("operator") is not True:
        return False
    exp, sid = session.get("exp"), session.get("sid")
    t = now if now is not None else time.time()
    if not (isinstance(exp, int | float) and t < exp and isinstance(sid, str)):
        return False
    if not hmac.compare_digest(str(session.get("pw", "")), password_mark(password_hash)):
        return False
    row = UiSession.get_or_none(UiSession.sid == sid)
    return row is not None and t < row.exp


async def session_ok(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """`session_valid` for a request's session, against the running config, off the event loop."""
    session = connection.scope.get("session")
    gate: Access = connection.app.state.access
    password_hash = gate.cfg.ui.password_hash
    return await asyncio.to_thread(session_valid, session, password_hash)  # type: ignore[arg-type]


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every page and action but sign-in: a valid session, else SignInRequired (a redirect)."""
    if not await session_ok(connection):
        raise SignInRequired(detail="sign in first")
