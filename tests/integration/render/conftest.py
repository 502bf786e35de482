"""Fixtures for the render check: a loopback site with known pages, a per-test browser workdir, leak checks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from tests.support import free_port

NORMAL = b"""<!doctype html><html><head><meta name="viewport" content="width=device-width"><title>ok</title>
<style>body{font-family:sans-serif;margin:0;padding:24px;background:#f4f4f8}
.box{width:240px;height:120px;background:#3355cc;border-radius:8px}</style></head>
<body><h1>Preview works</h1><p>A page with text, a box and a script.</p><div class="box"></div>
<p id="js"></p><script src="/app.js"></script></body></html>"""
APP_JS = b"document.getElementById('js').textContent = 'rendered by script';"
BLANK = b"""<!doctype html><html><head><title>blank</title></head>
<body><div id="root"></div><script src="/noop.js"></script></body></html>"""
THROWS = b"""<!doctype html><html><head><title>throws</title></head><body><div id="root"></div>
<script>throw new Error("render exploded: widget is undefined")</script></body></html>"""
MISSING_SCRIPT = b"""<!doctype html><html><head><title>missing</title></head><body><h1>Some text</h1>
<script src="/assets/index-missing.js"></script></body></html>"""
HANGING_IMAGE = b"""<!doctype html><html><head><title>hang</title></head><body><h1>Waiting forever</h1>
<img src="/hang.png"></body></html>"""
RED = b"""<!doctype html><html><body style="margin:0;background:#fff"><h1>Colour</h1>
<div style="width:300px;height:200px;background:#d03030"></div></body></html>"""


def long_page(extra: bool = False, height: int = 2600) -> bytes:
    """A page taller than a screen: a 100vh hero, then sections; ``extra`` adds one more, far below the fold."""
    more = b'<section style="height:300px;background:#2f7ad0">A new pricing section</section>' if extra else b""
    return (b'<!doctype html><html><head><meta name="viewport" content="width=device-width">'
            b"<style>body{margin:0;font-family:sans-serif}section{margin:0}</style></head><body>"
            b'<section style="height:100vh;background:#f0c040">Hero, one screen tall</section>'
            b'<section style="height:%dpx;background:#ffffff">Plain content</section>'
            b'<section style="height:200px;background:#30a060">Footer block</section>%s</body></html>'
            % (height - 200, more))


PREVIEW_HOST = "app1.preview.test"


@dataclass
class Site:
    """A loopback HTTP server; `hosts` records the Host header of every request."""

    port: int
    hosts: list[str] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(site: Site, release: threading.Event) -> type[BaseHTTPRequestHandler]:
    pages = {"/": (NORMAL, "text/html"), "/app.js": (APP_JS, "text/javascript"),
             "/noop.js": (b"void 0;", "text/javascript"), "/blank": (BLANK, "text/html"),
             "/throws": (THROWS, "text/html"), "/missing-script": (MISSING_SCRIPT, "text/html"),
             "/hanging-image": (HANGING_IMAGE, "text/html"), "/red": (RED, "text/html"),
             "/long": (long_page(), "text/html"), "/long-more": (long_page(extra=True), "text/html"),
             "/very-long": (long_page(height=20_000), "text/html")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = self.headers.get("Host", "")
            site.hosts.append(host)
            path = self.path.split("?")[0]
            if path == "/hang.png":
                release.wait(60)  # answer only when the test ends
                return
            if path.startswith("/only-preview") and not host.startswith(PREVIEW_HOST + ":"):
                return self._send(404, b"unknown preview", "text/plain")
            body, ctype = pages.get(path.removeprefix("/only-preview") or "/", (b"not found", "text/plain"))
            self._send(200 if body != b"not found" else 404, body, ctype)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    """The test pages on an ephemeral loopback port."""
    release = threading.Event()
    site = Site(0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site, release))
    server.daemon_threads = True
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    return free_port()


@pytest.fixture
def mute_server() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield int(s.getsockname()[1])
    s.close()


def live_processes_mentioning(text: str) -> list[str]:
    """Command lines of live (non-zombie) processes whose command line contains text."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if text in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{p.pid}: {cmd[:200]}")
        except psutil.Error:
            continue
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """Where check_page puts its throwaway profile; after the test no process uses it and it is empty."""
    wd = tmp_path / "browser"
    wd.mkdir()
    yield wd
    assert live_processes_mentioning(str(wd)) == []
    assert list(wd.iterdir()) == []
