"""Request signatures: x-sheen-signature HMAC-SHA256 over the raw body, with an optional timestamp replay guard."""

from __future__ import annotations

import hashlib
import hmac
import time

from daemon.core.errors import Unauthorized

MAX_SKEW_S = 300


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """Hex HMAC-SHA256 of the body (of `<timestamp>.<body>` when a timestamp is given)."""
    msg = body if timestamp is None else timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None, timestamp: str | None = None,
           now: float | None = None) -> None:
    """Raise Unauthorized unless the signature is right (and the timestamp, when sent, is fresh)."""
    if not signature:
        raise Unauthorized("missing x-sheen-signature header", code="signature_missing")
    sig = signature.strip()
    if sig.lower().startswith("sha256="):
        sig = sig[7:]
    if timestamp is not None:
        try:
            ts = float(timestamp)
        except ValueError:
            raise Unauthorized("x-sheen-timestamp must be unix seconds", code="timestamp_invalid") from None
        if abs((now if now is not None else time.time()) - ts) > MAX_SKEW_S:
            raise Unauthorized("x-sheen-timestamp is more than 5 minutes off", code="timestamp_stale")
    expected = sign(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode(), sig.lower().encode()):
        raise Unauthorized("x-sheen-signature does not match the body", code="signature_invalid")
