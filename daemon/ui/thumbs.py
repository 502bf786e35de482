"""Timeline thumbnails: the top of a version's desktop screenshot, scaled down once and kept in memory."""

from __future__ import annotations

import functools
import io

from PIL import Image

from daemon.services.history import HistoryView

WIDTH, HEIGHT = 320, 200  # twice the 160x100 box, for dense screens


@functools.lru_cache(maxsize=512)  # screenshots never change once taken; 512 thumbnails are about 10 MB
def thumbnail(history: HistoryView, version_id: str) -> bytes:
    """A JPEG of the screenshot's first screenful (1280x800 -> 320x200); NotFound when there is no screenshot."""
    png = history.screenshot(version_id, "desktop")
    with Image.open(io.BytesIO(png)) as img:
        img.draft("RGB", (WIDTH * 2, HEIGHT * 2))
        top = img.convert("RGB").crop((0, 0, img.width, min(img.height, img.width * HEIGHT // WIDTH)))
        top.thumbnail((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        top.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()
