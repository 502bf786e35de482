"""A real `previewd serve` process on loopback, on a temp data dir (config from `write_config`), v2-signed client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support import TEST_SECRET, auth, free_port, wait_until, write_config


class LiveDaemon:
    """A daemon subprocess and a signed client for it."""

    start_timeout_s = 30.0  # until /healthz answers 200 (a warming fleet droplet answers 503 until it is warm)

    def __init__(self, tmp: Path, extra_config: str = "") -> None:
        self.tmp = tmp
        self.port = free_port()
        self.config = write_config(tmp, extra_config, port=self.port)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(timeout=600, trust_env=False, auth=auth())  # every request v2-signed
        self.log = tmp / "daemon.log"

    def start(self) -> LiveDaemon:
        env = {**os.environ, "PREVIEWD_HMAC_SECRET": TEST_SECRET, "PREVIEWD_CONFIG": str(self.config)}
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve"], env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = self.proc

        def healthy() -> bool:
            try:
                if self.http.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-3000:]}")
            return False

        wait_until(healthy, self.start_timeout_s, interval=0.1, what="the daemon answering /healthz")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def post(self, path: str, payload: dict[str, Any], **params: str) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.http.post(self.base + path, content=body, headers={"content-type": "application/json"},
                              params=params)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.base + path, **kw)

    def preview(self, url: str, path: str = "/") -> httpx.Response:
        """Fetch from a local preview URL by its Host header (no DNS needed for *.localhost)."""
        host = url.split("//", 1)[1].split("/", 1)[0]
        return self.http.get(self.base + path, headers={"Host": host})

    def wait_status(self, version_id: str, statuses: tuple[str, ...], timeout: float = 300) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            v: dict[str, Any] = self.get(f"/versions/{version_id}").json()
            return v if v["status"] in statuses else None

        return wait_until(reached, timeout, interval=0.1, what=f"{version_id} reaching {statuses}")  # type: ignore[no-any-return]
