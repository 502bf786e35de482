"""The daemon answers the preview's origin for the browser (a deployment it does not hold is fetched from that
origin): a redirect is handed back to the browser, whose next request is judged again (issue 23, attack 3)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from daemon.render import check_page
from daemon.render.origin import HttpSource
from tests.support.render_attack import Victim, marker_pixels


@pytest.fixture
def redirector() -> Iterator[tuple[int, Victim]]:
    """(port of a preview whose / redirects to the victim, the victim)."""
    with Victim().running() as victim:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{victim.port}/redirected")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield int(server.server_address[1]), victim
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_redirect_out_of_the_origin_is_blocked(redirector: tuple[int, Victim], workdir: Path) -> None:
    port, victim = redirector
    r = check_page(f"http://127.0.0.1:{port}/", workdir=workdir, timeout_s=15)
    assert victim.hits == []
    assert any(f"127.0.0.1:{victim.port}/redirected" in b for b in r.blocked_requests), r.blocked_requests
    assert all(marker_pixels(png) == 0 for png in r.screenshots.values())


def test_http_source_never_follows_a_redirect_itself(redirector: tuple[int, Victim]) -> None:
    port, victim = redirector
    src = HttpSource(f"http://127.0.0.1:{port}/", timeout_s=5)
    try:
        a = src.get("GET", "/", {})
    finally:
        src.close()
    assert a.status == 302 and ("location", f"http://127.0.0.1:{victim.port}/redirected") in a.headers
    assert victim.hits == []
