"""Fixtures for deployer tests: a built site with hostile symlinks, a local deployer, a live server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.api.previews import make_preview_asgi
from daemon.deployers.local import LocalDeployer
from tests.integration.deployers.deployer_support import (
    ASSET,
    BIG_SIZE,
    GUIDE,
    INDEX,
    LiveServer,
    LogLines,
    inner_app,
    start_server,
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A Vite-like dist dir, plus symlinks a hostile build might leave pointing outside it."""
    out = tmp_path / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "docs" / "guide").mkdir(parents=True)
    (out / "index.html").write_bytes(INDEX)
    (out / "assets" / "index-abc123.js").write_bytes(ASSET)
    (out / "assets" / "index-def456.css").write_bytes(b"body{margin:0}")
    (out / "docs" / "guide" / "index.html").write_bytes(GUIDE)
    (out / "about.html").write_bytes(b"<p>about</p>")
    (out / "favicon.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (out / "app.wasm").write_bytes(b"\0asm\1\0\0\0")
    (out / "site.webmanifest").write_bytes(json.dumps({"name": "x"}).encode())
    (out / "data.json").write_bytes(b"{}")
    (out / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (out / "passwd").symlink_to("/etc/passwd")
    (out / "leak.txt").symlink_to("/etc/passwd")
    (out / "assets" / "leak-abc123.js").symlink_to("/etc/passwd")
    (out / "etc").symlink_to("/etc")
    return out


@pytest.fixture
def previews(tmp_path: Path) -> Path:
    """The previews dir shared by the deployer and the server."""
    path = tmp_path / "previews"
    path.mkdir()
    return path


@pytest.fixture
def deployer(previews: Path) -> LocalDeployer:
    """A local deployer publishing into the previews dir."""
    return LocalDeployer(previews, preview_domain="localhost", port=8080)


@pytest.fixture
def log() -> LogLines:
    """A fresh log collector."""
    return LogLines()


@pytest.fixture
def live(previews: Path) -> Iterator[LiveServer]:
    """The preview wrapper served for real by uvicorn on a free loopback port."""
    server, thread, port = start_server(make_preview_asgi(inner_app, previews, "localhost"))
    try:
        yield LiveServer(port, previews)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
