"""A real `previewd serve` process on loopback, on a temp data dir, with real pnpm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_SECRET, auth, free_port, write_config


class LiveDaemon:
    """A daemon subprocess and a signed client for it (every request v2-signed)."""

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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.http.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError("daemon did not start")

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.get(f"/versions/{version_id}").json()
            if v["status"] in statuses:
                return v  # type: ignore[no-any-return]
            time.sleep(0.1)
        raise AssertionError(f"{version_id} never reached {statuses}")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveDaemon]:
    d = LiveDaemon(tmp_path).start()
    yield d
    d.stop()


@pytest.fixture
def live_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[LiveDaemon] = []

    def make(extra_config: str = "") -> LiveDaemon:
        d = LiveDaemon(tmp_path, extra_config)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
