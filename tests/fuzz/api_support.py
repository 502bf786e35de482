"""Shared by the API fuzzers: the request signer (a requests auth hook), the checks and the 4xx shape check."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import requests
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from daemon.core.signing import sign, sign_v2
from tests.support import TEST_SECRET

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


class Signer(requests.auth.AuthBase):
    """Signs the exact bytes requests is about to send, in one of several ways picked from the request itself.

    Deterministic (a CRC of method, URL and body), so a failing example replays the same way: one request in
    ten goes unsigned, one carries a wrong MAC, one a stale timestamp, one the seed's body-only MAC (accepted on
    its three POST routes only), and the rest a v2 signature over method, path?query, timestamp and body (half
    of them with the `sha256=` prefix).
    """

    def __init__(self) -> None:
        self.mode = ""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = r.body or b""
        body = raw.encode("utf-8") if isinstance(raw, str) else raw
        assert isinstance(body, bytes), f"unexpected body type {type(body)}"
        pick = zlib.crc32(f"{r.method} {r.url}".encode() + b"\0" + body) % 10
        method, target = str(r.method), r.path_url  # path and query exactly as they go on the wire
        now = f"{time.time():.6f}"
        if pick == 0:
            self.mode = "unsigned"
        elif pick == 1:
            self.mode = "wrong"
            r.headers["x-sheen-timestamp"] = now
            r.headers["x-sheen-signature"] = sign_v2("not-the-secret", method, target, now, body)
        elif pick == 2:
            self.mode = "stale"
            stale = str(int(time.time()) - 3600)
            r.headers["x-sheen-timestamp"] = stale
            r.headers["x-sheen-signature"] = sign_v2(TEST_SECRET, method, target, stale, body)
        elif pick == 3:
            self.mode = "body-only"
            r.headers["x-sheen-signature"] = sign(TEST_SECRET, body)
        else:
            self.mode = "v2"
            mac = sign_v2(TEST_SECRET, method, target, now, body)
            r.headers["x-sheen-timestamp"] = now
            r.headers["x-sheen-signature"] = f"sha256={mac}" if pick % 2 else mac
        return r


def error_shape(response: Any) -> None:
    """Every 4xx is `{"error": {"code": str, "message": str, ...}}` served as JSON."""
    if not 400 <= response.status_code < 500:
        return
    ctype = (response.headers.get("content-type") or [""])[0]  # schemathesis keeps every header as a list
    assert ctype.startswith("application/json"), f"{response.status_code} answered as {ctype!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict), body
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body
