"""Render check, screenshots and visual diff through the real daemon and Debian's Chromium."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import wait_until
from tests.support.live import LiveDaemon
from tests.support.render_attack import Victim, marker_pixels

# Pages chosen by the prompt: a normal page, a page that throws, a blank page.
PAGES = '''
p = req["prompt"]
if "throw" in p:
    body = "<h1>Broken</h1><script>throw new Error('boom from the page')</script>"
elif "blank" in p:
    body = ""
else:
    colour = "#c00" if "red" in p else "#00c"
    body = f"<h1 style='color:{colour};font-size:64px'>{p}</h1><div style='height:300px;background:{colour}'></div>"
build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<html><body>" + body + "</body></html>"}
'''

# The prompt carries the victim's and the API's ports: "attack <victim> <api>".
ATTACK = '''
from tests.support.render_attack import attack_files
_, victim, api = req["prompt"].split()
files = attack_files(int(victim), int(api))
build = "mkdir -p dist && cp index.html sw.js dist/"
'''


def _daemon(tmp: Path) -> LiveDaemon:
    return LiveDaemon(tmp, generator_config(write_generator(tmp, PAGES))).start()


def _rendered(d: LiveDaemon, vid: str, timeout: float = 90) -> dict[str, Any]:
    def checked() -> dict[str, Any] | None:
        v: dict[str, Any] = d.get(f"/versions/{vid}").json()
        return v if v["renderStatus"] else None

    return wait_until(checked, timeout, interval=0.2, what=f"{vid} being render-checked")  # type: ignore[no-any-return]


def _build(d: LiveDaemon, project: str, prompt: str, new: bool = True) -> str:
    path = "/build-preview-for-new-project" if new else "/rebuild-preview"
    body = d.post(path, {"userId": "u", "projectId": project, "prompt": prompt}).json()
    assert body["success"] is True, body
    return str(body["versionId"])


def test_screenshots_and_visual_diff(tmp_path: Path) -> None:
    d = _daemon(tmp_path)
    try:
        v1 = _build(d, "site", "Blue page")
        v2 = _build(d, "site", "A red page", new=False)
        r1, r2 = _rendered(d, v1), _rendered(d, v2)
        assert r1["renderStatus"] == "ok", r1["renderDetail"]
        assert r2["renderStatus"] == "ok" and r2["renderDetail"]["httpStatus"] == 200
        for size, dims in (("desktop", (1280, 800)), ("mobile", (390, 844))):
            shot = d.get(f"/versions/{v2}/screenshot", params={"size": size})
            assert shot.status_code == 200 and shot.headers["content-type"] == "image/png"
            assert Image.open(io.BytesIO(shot.content)).size == dims
        assert (tmp_path / "data" / "objects" / "u" / "site" / "screens" / f"{v1}-desktop.png").is_file()
        stats = d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "visual-stats"}).json()
        assert stats["changedPixels"] > 1000 and 0 < stats["changedRatio"] < 1
        assert stats["size"] == [1280, 800]
        png = d.get(f"/versions/{v1}/diff/{v2}", params={"mode": "visual"})
        assert png.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(png.content)).size == (3 * 1280, 800)
        same = d.get(f"/versions/{v2}/diff/{v2}", params={"mode": "visual-stats"}).json()
        assert same["changedPixels"] == 0
        assert d.get(f"/versions/{v1}/screenshot", params={"size": "tv"}).status_code == 400
    finally:
        d.stop()


def test_broken_and_blank_pages_are_marked_not_failed(tmp_path: Path) -> None:
    d = _daemon(tmp_path)
    try:
        broken = _build(d, "broken", "throw please")
        blank = _build(d, "blank", "blank please")
        b = _rendered(d, broken)
        assert b["status"] == "deployed" and b["renderStatus"] == "errors"
        assert any("boom from the page" in e for e in b["renderDetail"]["jsErrors"])
        k = _rendered(d, blank)
        assert k["status"] == "deployed" and k["renderStatus"] == "blank"
        history = d.get("/versions", params={"userId": "u", "projectId": "broken"}).json()["versions"]
        assert history[0]["renderStatus"] == "errors"
    finally:
        d.stop()


def test_render_check_reaches_only_the_preview(tmp_path: Path) -> None:
    """Issue 23, attack 3: the page's iframes, images, scripts, fetches, workers and service worker aimed at a
    loopback-only service, the daemon's own /healthz, file:///etc/hostname and the metadata address reach none
    of them, the render records them as blocked, and nothing of theirs is in the screenshots users download."""
    with Victim().running() as victim:
        d = LiveDaemon(tmp_path, generator_config(write_generator(tmp_path, ATTACK))).start()
        try:
            vid = _build(d, "attack", f"attack {victim.port} {d.port}")
            r = _rendered(d, vid)
            detail = r["renderDetail"]
            assert r["renderStatus"] != "unavailable", detail
            assert victim.hits == []
            blocked = "\n".join(detail["blockedRequests"])
            for reached_for in (f"http://127.0.0.1:{victim.port}/frame", f"http://127.0.0.1:{victim.port}/pixel.png",
                                f"http://127.0.0.1:{victim.port}/fetch", f"http://localhost:{victim.port}/",
                                f"http://127.0.0.1:{d.port}/healthz", "http://169.254.169.254/",
                                "file:///etc/hostname"):
                assert reached_for in blocked, (reached_for, blocked)
            for size in ("desktop", "mobile"):
                shot = d.get(f"/versions/{vid}/screenshot", params={"size": size})
                assert shot.status_code == 200
                assert marker_pixels(shot.content) == 0, size
        finally:
            d.stop()
