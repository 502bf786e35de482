"""Request signatures (v2: method, path?query, timestamp and body; the seed's body-only form) and scoped read tokens."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass

from daemon.core.errors import Unauthorized
from daemon.core.ids import valid_id

MAX_SKEW_S = 300
TOKEN_VERSION = "v1"
# Unix seconds, optionally with a fraction: a client sending two equal requests in one second keeps them distinct
# (each signature is single-use) by sending milliseconds. Strict, so "nan" or "1e9" never pass the skew check.
_TIMESTAMP = re.compile(r"\d{1,12}(?:\.\d{1,9})?")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes) -> str:
    """The seed's body-only form: hex HMAC-SHA256 of the raw body."""
    return _mac(secret, body)


def canonical(method: str, target: str, timestamp: str, body: bytes) -> bytes:
    """What a v2 signature covers: `<METHOD>\\n<path?query>\\n<timestamp>\\n<body>`."""
    return f"{method.upper()}\n{target}\n{timestamp}\n".encode() + body


def sign_v2(secret: str, method: str, target: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical request (see `canonical`)."""
    return _mac(secret, canonical(method, target, timestamp, body))


def target_of(raw_path: bytes, query_string: bytes) -> str:
    """The request target as the client sent it: the raw path, plus `?query` when there is a query.

    Some ASGI servers (Litestar's test client) put the query into raw_path as well; it is cut off here so both
    kinds of server give the same target.
    """
    path = raw_path.split(b"?", 1)[0]
    target = path.decode("latin-1")
    return f"{target}?{query_string.decode('latin-1')}" if query_string else target


def _normalized(signature: str) -> str:
    sig = signature.strip().lower()
    return sig[7:] if sig.startswith("sha256=") else sig


@dataclass(frozen=True)
class Verified:
    """A request that passed: its form, and for v2 the nonce to remember until the signature goes stale."""

    form: str  # "v2" | "body-only"
    nonce: str | None = None
    expires_at: float | None = None


def _is_json_object(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and bool(data)


def verify_request(secret: str, method: str, target: str, body: bytes, signature: str | None,
                   timestamp: str | None, *, body_only_ok: bool = False, now: float | None = None) -> Verified:
    """Check one request's signature; raise Unauthorized (with a stable code) unless it is right.

    v2 (a timestamp is sent): the MAC covers method, target, timestamp and body; the timestamp must be within
    MAX_SKEW_S of now. Body-only (no timestamp): accepted only when `body_only_ok` (the seed's three POST routes,
    when the config allows it) and the body is a non-empty JSON object, because then the body names the operation.
    """
    if not signature:
        raise Unauthorized("missing x-sheen-signature header", code="signature_missing")
    sig = _normalized(signature)
    if timestamp is None:
        if not body_only_ok:
            raise Unauthorized("missing x-sheen-timestamp: this route needs a v2 signature over "
                               "<METHOD>\\n<path?query>\\n<timestamp>\\n<body>", code="timestamp_missing")
        if not hmac.compare_digest(sign(secret, body).encode(), sig.encode()):
            raise Unauthorized("x-sheen-signature does not match the body", code="signature_invalid")
        if not _is_json_object(body):
            raise Unauthorized("a body-only signature is accepted only with a JSON object body; send a v2 "
                               "signature with x-sheen-timestamp", code="signature_v2_required")
        return Verified("body-only")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Unauthorized("x-sheen-timestamp must be unix seconds", code="timestamp_invalid")
    ts = float(timestamp)
    if abs((now if now is not None else time.time()) - ts) > MAX_SKEW_S:
        raise Unauthorized("x-sheen-timestamp is more than 5 minutes off", code="timestamp_stale")
    expected = sign_v2(secret, method, target, timestamp, body)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise Unauthorized("x-sheen-signature does not match the request (method, path?query, timestamp, body)",
                           code="signature_invalid")
    return Verified("v2", nonce=sig, expires_at=ts + MAX_SKEW_S)


# -- scoped read tokens ------------------------------------------------------------------------------------------

def _token_message(user_id: str, project_id: str, expires_at: int) -> bytes:
    # No newline in here, so no token MAC can ever equal a v2 request MAC (whose message always has three).
    return f"previewd-token:{TOKEN_VERSION}:{user_id}:{project_id}:{expires_at}".encode()


def mint_token(secret: str, user_id: str, project_id: str, expires_at: int) -> str:
    """`v1.<userId>.<projectId>.<exp>.<hex mac>`: reads one project's data until `exp` (unix seconds)."""
    if not (valid_id(user_id) and valid_id(project_id)):
        raise ValueError("userId and projectId must be 1-64 characters of A-Z a-z 0-9 _ -")
    mac = _mac(secret, _token_message(user_id, project_id, expires_at))
    return f"{TOKEN_VERSION}.{user_id}.{project_id}.{expires_at}.{mac}"


def verify_token(secret: str, token: str, *, max_ttl_s: float, now: float | None = None) -> tuple[str, str]:
    """The (userId, projectId) a token grants; Unauthorized when malformed, tampered, expired or too long-lived."""
    parts = token.strip().split(".")
    if (len(parts) != 5 or parts[0] != TOKEN_VERSION or not valid_id(parts[1]) or not valid_id(parts[2])
            or not parts[3].isascii() or not parts[3].isdigit() or len(parts[3]) > 12
            or not _HEX64.fullmatch(parts[4])):
        raise Unauthorized("read token malformed: expected v1.<userId>.<projectId>.<exp>.<hexmac>",
                           code="token_malformed")
    user_id, project_id, exp, mac = parts[1], parts[2], int(parts[3]), parts[4]
    expected = _mac(secret, _token_message(user_id, project_id, exp))
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise Unauthorized("read token does not verify", code="token_invalid")
    t = now if now is not None else time.time()
    if exp <= t:
        raise Unauthorized("read token expired", code="token_expired")
    if exp - t > max_ttl_s:
        raise Unauthorized(f"read token lives longer than the allowed {int(max_ttl_s)} s", code="token_invalid")
    return user_id, project_id
