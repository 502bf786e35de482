"""Full-page screenshots in real Chromium: the whole page at each width, capped, and a diff that finds a section
added below the fold."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from daemon.render import check_page
from daemon.render.check import MAX_PAGE_HEIGHT
from daemon.render.visual import compare
from tests.integration.render.conftest import Site

YELLOW, GREEN, BLUE = (0xF0, 0xC0, 0x40), (0x30, 0xA0, 0x60), (0x2F, 0x7A, 0xD0)


def _image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_screenshots_cover_the_whole_page_at_both_widths(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/long"), workdir=workdir)
    assert r.status == "ok", r.detail
    for name, (w, h) in (("desktop", (1280, 800)), ("mobile", (390, 844))):
        img = _image(r.screenshots[name])
        # The hero is one screen tall (100vh keeps meaning the viewport), then 2400 px, then the footer.
        assert img.size == (w, h + 2600), name
        assert r.page_heights[name] == h + 2600
        assert img.getpixel((w // 2, h - 5)) == YELLOW and img.getpixel((w // 2, h + 5)) == (255, 255, 255)
        assert img.getpixel((w // 2, img.height - 5)) == GREEN, name
    assert r.as_dict()["pageHeights"] == {"desktop": 3400, "mobile": 3444}


def test_a_short_page_is_still_one_screen(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/"), workdir=workdir)
    assert _image(r.screenshots["desktop"]).size == (1280, 800)
    assert _image(r.screenshots["mobile"]).size == (390, 844)


def test_a_very_long_page_stops_at_the_cap(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/very-long"), workdir=workdir, sizes={"desktop": (1280, 800)})
    assert r.status == "ok", r.detail
    assert _image(r.screenshots["desktop"]).size == (1280, MAX_PAGE_HEIGHT)
    assert r.page_heights["desktop"] == 800 + 20_000
    assert f"screenshot stops at {MAX_PAGE_HEIGHT} px" in r.detail


def test_a_section_added_below_the_fold_shows_in_the_visual_diff(site: Site, workdir: Path) -> None:
    before = check_page(site.url("/long"), workdir=workdir, sizes={"desktop": (1280, 800)})
    after = check_page(site.url("/long-more"), workdir=workdir, sizes={"desktop": (1280, 800)})
    d = compare(before.screenshots["desktop"], after.screenshots["desktop"])
    assert d.size == (1280, 3700)
    # The new 300 px band (all but its line of text) is most of what changed: 300 of 3700 rows, ~8%.
    assert 0.07 < d.changed_ratio < 0.09, d.as_dict()
    assert len(d.regions) == 1
    _x, y, w, h = d.regions[0]
    assert y == 3400 and h == 300 and w > 1200
    assert _image(after.screenshots["desktop"]).getpixel((640, 3650)) == BLUE
