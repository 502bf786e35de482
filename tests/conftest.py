"""Shared fixtures: a daemon configured on a temp data dir, a signing client, free ports."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.daemonctl import SheenAuth
from daemon.core.config import Config, load
from daemon.core.signing import sign, sign_v2

TEST_SECRET = "test-secret-0123456789abcdef"
SHARED_STORE = Path("/tmp/previewd-test-pnpm-store")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, text: str = "", *, port: int | None = None) -> Path:
    """A TOML config on a temp data dir (and the shared test pnpm store, so installs stay warm)."""
    data = tmp / "data"
    body = (f"[server]\nport = {port or free_port()}\n"
            f"[paths]\ndata_dir = \"{data}\"\npnpm_store = \"{SHARED_STORE}\"\n")
    path = tmp / "previewd.toml"
    path.write_text(body + text)
    return path


def make_config(tmp: Path, text: str = "", env: dict[str, str] | None = None) -> Config:
    """Load a Config the way the daemon does, with the test HMAC secret."""
    return load(write_config(tmp, text), env={"PREVIEWD_HMAC_SECRET": TEST_SECRET, **(env or {})})


def signed_headers(method: str, target: str, body: bytes = b"", *, secret: str = TEST_SECRET,
                   ts: str | None = None) -> dict[str, str]:
    """Headers of a v2-signed request: the MAC covers method, target (path?query as sent), timestamp and body."""
    stamp = ts if ts is not None else f"{time.time():.6f}"
    return {"content-type": "application/json", "x-sheen-timestamp": stamp,
            "x-sheen-signature": sign_v2(secret, method, target, stamp, body)}


def body_only_headers(body: bytes, *, secret: str = TEST_SECRET) -> dict[str, str]:
    """Headers of the seed's body-only signature (no timestamp): only its three POST routes accept it."""
    return {"content-type": "application/json", "x-sheen-signature": sign(secret, body)}


def auth(secret: str = TEST_SECRET) -> SheenAuth:
    """An httpx auth that v2-signs every request a client sends (the one daemonctl uses)."""
    return SheenAuth(secret)


class ApiClient:
    """Wraps Litestar's TestClient: requests are v2-signed unless sign_it=False."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(self, path: str, payload: Any, *, sign_it: bool = True, params: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h = {"content-type": "application/json", **(headers or {})}
        return self.client.post(path, content=body, headers=h, params=params, auth=auth() if sign_it else None)

    def get(self, path: str, *, sign_it: bool = True, **kw: Any) -> Any:
        return self.client.get(path, auth=auth() if sign_it else None, **kw)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a loopback port, one for the whole session (tests use their own buckets)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def daemon_cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    """The API over a real runtime whose worker is not started: builds stay queued (202)."""
    from litestar.testing import TestClient

    from daemon.cli.serve import Daemon

    d = Daemon(make_config(tmp_path))
    with TestClient(d.app) as client:
        api = ApiClient(client)
        api.daemon = d  # type: ignore[attr-defined]
        yield api
    d.close()


def wait_until(fn: Any, timeout: float = 30, interval: float = 0.05) -> Any:
    """Poll fn until it returns truthy; fail the test at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
