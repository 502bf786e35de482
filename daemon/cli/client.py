"""The signed HTTP client `daemonctl` and its operations verbs share to talk to a running daemon."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from daemon.core.config import Config, hmac_secret_path
from daemon.core.signing import sign


class Client:
    """A signed HTTP client for the daemon's API."""

    def __init__(self, cfg: Config, base_url: str | None = None, timeout: float = 900) -> None:
        self.base = (base_url or cfg.base_url).rstrip("/")
        self.secret = cfg.secrets.hmac_secret or self._secret_from_file(cfg)
        self.http = httpx.Client(timeout=timeout, trust_env=False)

    @staticmethod
    def _secret_from_file(cfg: Config) -> str:
        path = hmac_secret_path(cfg)
        try:
            return path.read_text().strip()
        except OSError:
            raise SystemExit(f"daemonctl: no PREVIEWD_HMAC_SECRET and cannot read {path}; is the daemon's data "
                             "dir right (--config / PREVIEWD_DATA_DIR) and readable by you?") from None

    def _headers(self, body: bytes) -> dict[str, str]:
        ts = str(int(time.time()))
        return {"content-type": "application/json", "x-sheen-timestamp": ts,
                "x-sheen-signature": "sha256=" + sign(self.secret, body, ts)}

    def post(self, path: str, payload: dict[str, Any], params: dict[str, str] | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.http.post(self.base + path, content=body, headers=self._headers(body), params=params)

    def get(self, path: str, params: dict[str, Any] | None = None, signed: bool = False) -> httpx.Response:
        headers = self._headers(b"") if signed else {}
        return self.http.get(self.base + path, params=params, headers=headers)
