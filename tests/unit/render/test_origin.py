"""The render check's gate and origin: what counts as the preview's origin, what the daemon answers from the
deployment's files, and which screenshots it accepts (issue 23, attack 3)."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from daemon.render.check import MAX_SCREENSHOT_BYTES, _checked_png
from daemon.render.origin import MAX_BODY, DirSource, Gate, OriginError, origin_of

ORIGIN = "http://site-01abc.localhost:8080/"


@pytest.mark.parametrize("url,same", [
    ("http://site-01abc.localhost:8080/assets/app.js?v=1", True),
    ("http://SITE-01abc.LOCALHOST:8080/", True),
    ("http://user:pw@site-01abc.localhost:8080/x", True),
    ("http://site-01abc.localhost:8081/", False),
    ("https://site-01abc.localhost:8080/", False),
    ("http://site-01abc.localhost/", False),
    ("http://other.localhost:8080/", False),
    ("http://127.0.0.1:8080/", False),
    ("http://site-01abc.localhost.evil.test:8080/", False),
    ("file:///etc/hostname", False),
    ("ws://site-01abc.localhost:8080/", False),
])
def test_only_the_previews_own_origin_is_the_origin(url: str, same: bool) -> None:
    assert (origin_of(url) == origin_of(ORIGIN)) is same


def test_default_ports_are_explicit() -> None:
    assert origin_of("https://a.pages.dev/") == origin_of("https://a.pages.dev:443/x")


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_screenshot_is_taken_only_as_a_png_of_the_asked_size() -> None:
    good = _png(64, 48)
    assert _checked_png(base64.b64encode(good).decode(), 64, 48) == good
    assert _checked_png(base64.b64encode(good).decode(), 65, 48) is None
    assert _checked_png(base64.b64encode(b"GIF89a not a png").decode(), 64, 48) is None
    assert _checked_png(base64.b64encode(good[:40]).decode(), 64, 48) is None  # truncated
    assert _checked_png("not base64 !!", 64, 48) is None
    assert _checked_png(None, 64, 48) is None
    assert _checked_png("A" * (MAX_SCREENSHOT_BYTES * 2), 64, 48) is None


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    d = tmp_path / "dep"
    (d / "assets").mkdir(parents=True)
    (d / "index.html").write_text("<h1>index</h1>")
    (d / "about.html").write_text("<h1>about</h1>")
    (d / "assets" / "app-abc123.js").write_text("console.log(1)")
    (d / "secret-link").symlink_to("/etc/hostname")
    (d / "assets" / "dir-link").symlink_to("/etc")
    return d


def test_dir_source_answers_like_the_preview_server(deployment: Path) -> None:
    src = DirSource(deployment)
    a = src.get("GET", "/assets/app-abc123.js?x=1", {})
    assert a.status == 200 and a.body == b"console.log(1)" and ("Content-Type", "text/javascript; charset=utf-8") \
        in a.headers
    assert src.get("GET", "/about", {}).body == b"<h1>about</h1>"
    assert src.get("GET", "/some/route", {}).body == b"<h1>index</h1>"  # the SPA fallback
    assert src.get("GET", "/%61bout.html", {}).body == b"<h1>about</h1>"  # percent-encoded as the browser sends
    assert src.get("HEAD", "/", {}).body == b""
    assert src.get("POST", "/", {}).status == 405


def test_dir_source_follows_no_link_and_climbs_nowhere(deployment: Path) -> None:
    src = DirSource(deployment)
    secret = Path("/etc/hostname").read_bytes()
    # A link is never followed: an extensionless miss gets the SPA's index.html, never the link's target.
    assert src.get("GET", "/secret-link", {}).body == b"<h1>index</h1>"
    assert src.get("GET", "/assets/dir-link/hostname", {}).body == b"<h1>index</h1>"
    assert src.get("GET", "/assets/dir-link/hostname.txt", {}).status == 404
    assert secret not in src.get("GET", "/secret-link.txt", {}).body
    assert src.get("GET", "/assets/%2e%2e/%2e%2e/etc/hostname", {}).status == 400
    assert src.get("GET", "/a%00b", {}).status == 400


def test_dir_source_refuses_a_file_over_the_cap(deployment: Path) -> None:
    with open(deployment / "big.bin", "wb") as f:
        f.truncate(MAX_BODY + 1)
    with pytest.raises(OriginError):
        DirSource(deployment).get("GET", "/big.bin", {})


class _Sent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.done = threading.Event()

    def __call__(self, method: str, params: dict[str, Any]) -> None:
        self.calls.append((method, params))
        self.done.set()


def _paused(url: str, rid: str = "r1", kind: str = "Document") -> dict[str, Any]:
    return {"requestId": rid, "request": {"url": url, "method": "GET", "headers": {}}, "resourceType": kind}


def test_gate_refuses_every_other_origin_and_lists_it(deployment: Path) -> None:
    sent = _Sent()
    gate = Gate(ORIGIN, DirSource(deployment), sent)
    try:
        for i, url in enumerate(("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data/",
                                 "http://site-01abc.localhost:9999/")):
            gate.paused(_paused(url, f"r{i}", "Image"))
    finally:
        gate.close()
    assert [c[0] for c in sent.calls] == ["Fetch.failRequest"] * 3
    assert all(c[1]["errorReason"] == "BlockedByClient" for c in sent.calls)
    assert gate.blocked == ["GET http://127.0.0.1:9/x (Image)", "GET http://169.254.169.254/latest/meta-data/ (Image)",
                            "GET http://site-01abc.localhost:9999/ (Image)"]


def test_gate_answers_the_origin_from_the_deployment(deployment: Path) -> None:
    sent = _Sent()
    gate = Gate(ORIGIN, DirSource(deployment), sent)
    try:
        gate.paused(_paused(ORIGIN + "about"))
        assert sent.done.wait(10)
    finally:
        gate.close()
    method, params = sent.calls[0]
    assert method == "Fetch.fulfillRequest" and params["responseCode"] == 200
    assert base64.b64decode(params["body"]) == b"<h1>about</h1>"
    assert gate.blocked == []


def test_gate_survives_a_browser_that_is_gone(deployment: Path) -> None:
    def broken(method: str, params: dict[str, Any]) -> None:
        raise OSError("pipe closed")

    gate = Gate(ORIGIN, DirSource(deployment), broken)
    gate.paused(_paused("http://127.0.0.1:9/"))
    gate.paused(_paused(ORIGIN))
    time.sleep(0.05)
    gate.close()
    assert os.path.isdir(deployment)


def test_origin_source_is_the_deployment_only_when_the_daemon_holds_it(tmp_path: Path) -> None:
    from daemon.project.renderbox import origin_source
    from daemon.render.origin import HttpSource

    previews = tmp_path / "previews"
    (previews / "site-01abc").mkdir(parents=True)
    (previews / "linked-01abc").symlink_to(previews / "site-01abc")
    held = origin_source("http://site-01abc.localhost:8080/", previews, "localhost", 5)
    assert isinstance(held, DirSource) and held.root == previews / "site-01abc"
    for url in ("http://linked-01abc.localhost:8080/", "http://gone-01abc.localhost:8080/",
                "https://abc123.project.pages.dev/", "http://site-01abc.localhost.evil.test:8080/"):
        src = origin_source(url, previews, "localhost", 5)
        assert isinstance(src, HttpSource), url
        src.close()
