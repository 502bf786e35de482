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

from tests.support import signed_headers

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


class Signer(requests.auth.AuthBase):
    """Signs the exact bytes requests is about to send, in one of several ways picked from the request itself.

    Deterministic (a CRC of method, URL and body), so a failing example replays the same way: one request in
    ten goes unsigned, one carries a wrong MAC, one a stale timestamp, two a fresh timestamp, and the rest a
    plain signature (half of them with the `sha256=` prefix).
    """

    def __init__(self) -> None:
        self.mode = ""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = r.body or b""
        body = raw.encode("utf-8") if isinstance(raw, str) else raw
        assert isinstance(body, bytes), f"unexpected body type {type(body)}"
        pick = zlib.crc32(f"{r.method} {r.url}".encode() + b"\0" + body) % 10
        now = str(int(time.time()))
        signed: dict[str, str] = {}
        if pick == 0:
            self.mode = "unsigned"
        elif pick == 1:
            self.mode = "wrong"
            signed = signed_headers(body, secret="not-the-secret")
        elif pick == 2:
            self.mode = "stale"
            signed = signed_headers(body, ts=str(int(time.time()) - 3600))
        elif pick in (3, 4):
            self.mode = "timestamped"
            signed = signed_headers(body, ts=now)
        else:
            self.mode = "signed"
            signed = signed_headers(body)
            if pick % 2:
                signed["x-sheen-signature"] = "sha256=" + signed["x-sheen-signature"]
        r.headers.update({k: v for k, v in signed.items() if k.startswith("x-sheen-")})
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
