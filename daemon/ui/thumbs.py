"""Timeline thumbnails: the top of a version's desktop screenshot, scaled down once and kept in memory."""

from __future__ import annotations

import functools
import io

from PIL import Image

from daemon.services.history import HistoryView

WIDTH, HEIGHT = 320, 200  # twice the 160x100 box, for dense screens
LARGE = 2  # the production card's picture: 640x400 (a full-page screenshot can be several MB; this is ~40 KB)


@functools.lru_cache(maxsize=512)  # screenshots never change once taken; 512 thumbnails are about 10 MB
def thumbnail(history: HistoryView, version_id: str, scale: int = 1) -> bytes:
    """A JPEG of the screenshot's first screenful (1280x800 -> 320x200, or 640x400 with scale 2); NotFound when
    there is no screenshot."""
    width, height = WIDTH * scale, HEIGHT * scale
    png = history.screenshot(version_id, "desktop")
    with Image.open(io.BytesIO(png)) as img:
        img.draft("RGB", (width * 2, height * 2))
        top = img.convert("RGB").crop((0, 0, img.width, min(img.height, img.width * height // width)))
        top.thumbnail((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        top.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()
