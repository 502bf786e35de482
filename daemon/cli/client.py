"""The signed HTTP client `daemonctl` and its operations verbs share to talk to a running daemon (signature v2)."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from typing import Any

import httpx

from daemon.core.config import Config, hmac_secret_path
from daemon.core.signing import sign_v2


class SheenAuth(httpx.Auth):
    """Signs every request httpx sends with signature v2: HMAC over method, path?query, timestamp and body.

    The timestamp carries microseconds, so two identical requests in one second still get distinct signatures
    (the daemon accepts each signature once).
    """

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        ts = f"{time.time():.6f}"
        target = request.url.raw_path.decode("ascii")  # path and query exactly as they go on the wire
        request.headers["x-sheen-timestamp"] = ts
        request.headers["x-sheen-signature"] = "sha256=" + sign_v2(self.secret, request.method, target, ts,
                                                                   request.content)
        yield request


class Client:
    """A signed HTTP client for the daemon's API (every request signed, v2)."""

    def __init__(self, cfg: Config, base_url: str | None = None, timeout: float = 900) -> None:
        self.base = (base_url or cfg.base_url).rstrip("/")
        self.secret = cfg.secrets.hmac_secret or self._secret_from_file(cfg)
        self.http = httpx.Client(timeout=timeout, trust_env=False, auth=SheenAuth(self.secret))

    @staticmethod
    def _secret_from_file(cfg: Config) -> str:
        path = hmac_secret_path(cfg)
        try:
            return path.read_text().strip()
        except OSError:
            raise SystemExit(f"daemonctl: no PREVIEWD_HMAC_SECRET and cannot read {path}; is the daemon's data "
                             "dir right (--config / PREVIEWD_DATA_DIR) and readable by you?") from None

    def post(self, path: str, payload: dict[str, Any], params: dict[str, str] | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.http.post(self.base + path, content=body, headers={"content-type": "application/json"},
                              params=params)

    def put(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.http.put(self.base + path, content=body, headers={"content-type": "application/json"})

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.get(self.base + path, params=params)
