"""The README's quick try through the real daemon: the template's bakery, two rebuilds a person sees, and the
full-page visual diff that finds the section added below the fold."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support import wait_until
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm


def _build(d: LiveDaemon, prompt: str, new: bool = False) -> dict[str, Any]:
    path = "/build-preview-for-new-project" if new else "/rebuild-preview"
    body: dict[str, Any] = d.post(path, {"userId": "alice", "projectId": "bakery", "prompt": prompt}).json()
    assert body["success"] is True, body
    return body


def _rendered(d: LiveDaemon, vid: str) -> dict[str, Any]:
    def checked() -> dict[str, Any] | None:
        v: dict[str, Any] = d.get(f"/versions/{vid}").json()
        return v if v["renderStatus"] else None

    return wait_until(checked, 120, interval=0.3, what=f"{vid} being render-checked")  # type: ignore[no-any-return]


def _js(d: LiveDaemon, url: str) -> str:
    html = d.preview(url).text
    start = html.index('src="/assets/') + len('src="')
    return d.preview(url, html[start:html.index('"', start)]).text


def test_quick_try_rebuilds_change_what_a_person_sees(tmp_path: Path) -> None:
    d = LiveDaemon(tmp_path).start()
    try:
        v1 = _build(d, "A bakery with a menu and opening hours", new=True)
        v2 = _build(d, "Make the headline say Fresh bread every morning")
        v3 = _build(d, "Add a pricing section and use a dark theme")
        js1, js2 = _js(d, v1["previewUrl"]), _js(d, v2["previewUrl"])
        assert "Baked from scratch" in js1 and "Fresh bread every morning" not in js1
        assert "Fresh bread every morning" in js2 and "Baked from scratch" not in js2
        assert "Make the headline" not in js2  # never the prompt itself
        assert d.preview(v1["previewUrl"], "/favicon.svg").status_code == 200

        r1, r2, r3 = (_rendered(d, v["versionId"]) for v in (v1, v2, v3))
        assert [r["renderStatus"] for r in (r1, r2, r3)] == ["ok", "ok", "ok"], r3["renderDetail"]
        shot = Image.open(io.BytesIO(d.get(f"/versions/{v3['versionId']}/screenshot",
                                           params={"size": "desktop"}).content))
        assert shot.width == 1280 and shot.height > 800  # the whole page, not the first screen

        # The headline: a change at the top of the page.
        top = d.get(f"/versions/{v1['versionId']}/diff/{v2['versionId']}", params={"mode": "visual-stats"}).json()
        assert 0 < top["changedRatio"] < 0.2 and top["regions"] and top["regions"][0]["y"] < 800, top
        # The pricing section (and the dark theme): the page grew, and the diff covers it down to the end.
        grown = d.get(f"/versions/{v2['versionId']}/diff/{v3['versionId']}", params={"mode": "visual-stats"}).json()
        assert grown["size"][1] > top["size"][1], (top, grown)
        assert max(r["y"] + r["height"] for r in grown["regions"]) > 800, grown
        png = d.get(f"/versions/{v2['versionId']}/diff/{v3['versionId']}", params={"mode": "visual"})
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (3 * 1280, grown["size"][1])
    finally:
        d.stop()
