"""packaging/haproxy-fleet.cfg under a real HAProxy (issue 16): a project's API requests always reach one
droplet, previews reach any, and a droplet answering 503 on /healthz (draining) leaves the API pool."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import free_port, wait_until

REPO = Path(__file__).resolve().parents[3]
# `make test` installs it (scripts/install-system-deps.sh): a missing haproxy fails here, never skips silently.
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class FakeDroplet:
    """An HTTP server that answers every request with its name; /healthz 503 while `draining`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.draining = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                code = 503 if urlsplit(self.path).path == "/healthz" and owner.draining else 200
                body = json.dumps({"droplet": owner.name, "key": self.headers.get("x-previewd-route")}).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, list[FakeDroplet]]]:
    drops = [FakeDroplet(f"drop-{i}") for i in range(1, 4)]
    text = (REPO / "packaging" / "haproxy-fleet.cfg").read_text()
    port = free_port()
    text = text.replace("bind :80", f"bind 127.0.0.1:{port}").replace("inter 2s fall 2 rise 2",
                                                                     "inter 200ms fall 1 rise 1")
    for i, d in enumerate(drops, 1):
        text = text.replace(f"10.0.0.1{i}:8080", f"127.0.0.1:{d.port}")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    assert Path(HAPROXY).is_file(), "haproxy is not installed: run scripts/install-system-deps.sh"
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 15, what="haproxy answering")
    yield base, drops
    proc.terminate()
    proc.wait(10)
    for d in drops:
        d.server.shutdown()


def test_api_hashes_on_the_project_previews_go_anywhere_and_draining_leaves(
        proxy: tuple[str, list[FakeDroplet]]) -> None:
    base, drops = proxy
    c = httpx.Client(timeout=5)

    def via_body(user: str, project: str) -> dict[str, str]:
        r = c.post(base + "/rebuild-preview", json={"userId": user, "projectId": project, "prompt": "x"})
        return r.json()  # type: ignore[no-any-return]

    first = via_body("alice", "bakery")
    assert first["key"] == "alice:bakery"
    # the same project reaches the same droplet by body, by path and by query
    for _ in range(5):
        assert via_body("alice", "bakery")["droplet"] == first["droplet"]
        assert c.post(base + "/projects/alice/bakery/undo", json={}).json() == first
        assert c.get(base + "/versions", params={"userId": "alice", "projectId": "bakery"}).json() == first
    spread = {via_body("u", f"p{i}")["droplet"] for i in range(30)}
    assert len(spread) >= 2  # projects spread over the droplets
    hosts = {c.get(base + "/", headers={"host": "p--u.preview.example.com"}).json()["droplet"] for _ in range(9)}
    assert hosts == {d.name for d in drops}  # previews: any droplet (round robin)

    holder = next(d for d in drops if d.name == first["droplet"])
    holder.draining = True
    deadline = time.monotonic() + 10
    while via_body("alice", "bakery")["droplet"] == holder.name and time.monotonic() < deadline:
        time.sleep(0.1)
    assert via_body("alice", "bakery")["droplet"] != holder.name  # the drained droplet's projects moved
