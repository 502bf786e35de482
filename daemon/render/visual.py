"""Visual diff of two screenshots: pixelmatch's YIQ distance and anti-aliasing test, vectorised with numpy.

The screenshots are whole pages (daemon/render/check.py), so the changed share is of the whole page, and the
changed pixels are grouped into regions, boxed in the diff image, so a change far below the fold is found.
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, UnidentifiedImageError

# pixelmatch's constants: 35215 is the largest possible YIQ distance; alpha 0.1 fades unchanged pixels.
MAX_YIQ_DELTA = 35215.0
FADE = 0.1
DIFF_COLOUR = (255, 0, 0)
AA_COLOUR = (255, 255, 0)
MAX_SIDE = 8192  # a bigger screenshot is not ours; refuse before allocating
BOX_COLOUR = (236, 0, 140)
# Changed pixels are grouped on a grid of CELL px; changes less than GAP cells apart make one region.
CELL = 16
GAP = 2
MAX_REGIONS = 50  # the largest ones; a page where everything moved is one big region anyway

# The 8 neighbours in pixelmatch's scan order (x outer, y inner), which decides ties for darkest/brightest.
_NEIGHBOURS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]

F64 = NDArray[np.float64]


class VisualError(ValueError):
    """An input is not a usable image (code: invalid_image | image_too_large | invalid_threshold)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class VisualDiff:
    """Result of compare(): counts over the padded size, and the images to draw the side-by-side PNG."""

    changed_pixels: int
    changed_ratio: float
    size: tuple[int, int]
    _a: NDArray[np.uint8] = field(repr=False)
    _b: NDArray[np.uint8] = field(repr=False)
    _changed: NDArray[np.bool_] = field(repr=False)
    _aa: NDArray[np.bool_] = field(repr=False)
    _regions: list[tuple[int, int, int, int]] | None = field(default=None, repr=False)

    @property
    def regions(self) -> list[tuple[int, int, int, int]]:
        """The changed areas as (x, y, width, height) boxes, top to bottom (at most MAX_REGIONS, the largest)."""
        if self._regions is None:
            self._regions = changed_regions(self._changed)
        return self._regions

    def as_dict(self) -> dict[str, object]:
        """The `mode=visual-stats` JSON shape; ``changedRatio`` is the changed share of the whole (padded) page."""
        return {"changedPixels": self.changed_pixels, "changedRatio": self.changed_ratio, "size": list(self.size),
                "regions": [{"x": x, "y": y, "width": w, "height": h} for x, y, w, h in self.regions]}

    def render_png(self) -> bytes:
        """A | B | diff side by side: the diff is a faded grey copy of A with changes red, anti-aliasing yellow;
        each changed region is boxed on B and on the diff."""
        h, w = self._changed.shape
        a = _rgb8(self._a)
        out = np.empty((h, 3 * w, 3), dtype=np.uint8)
        out[:, :w] = a
        out[:, w:2 * w] = _rgb8(self._b)
        # float32 is plenty for a faded picture and halves the memory of a whole page's pass.
        luma = a.astype(np.float32) @ np.array(_LUMA, dtype=np.float32)
        grey = np.clip(255.0 + (luma - 255.0) * FADE, 0, 255).astype(np.uint8)
        diff = out[:, 2 * w:]
        diff[...] = grey[:, :, None]
        diff[self._aa] = AA_COLOUR
        diff[self._changed] = DIFF_COLOUR
        img = Image.fromarray(out, "RGB")
        draw = ImageDraw.Draw(img)
        for x, y, bw, bh in self.regions:
            for panel in (w, 2 * w):
                box = (panel + max(x - 3, 0), max(y - 3, 0), panel + min(x + bw + 2, w - 1), min(y + bh + 2, h - 1))
                draw.rectangle(box, outline=BOX_COLOUR, width=3)
        buf = io.BytesIO()
        # A whole page side by side is ~3840x8000: the fastest zlib level costs ~10% in size, a third in time.
        img.save(buf, "PNG", optimize=False, compress_level=1 if h * w > 4_000_000 else 6)
        return buf.getvalue()


def compare(png_a: bytes, png_b: bytes, *, threshold: float = 0.1, include_aa: bool = False) -> VisualDiff:
    """Count pixels whose YIQ distance exceeds `threshold` (0..1), skipping anti-aliased ones unless include_aa.

    Images of different sizes are padded with white to the larger width and height (a page that grew).
    Raises VisualError when a PNG does not decode or the threshold is out of range.
    """
    if not 0.0 <= threshold <= 1.0:
        raise VisualError("invalid_threshold", f"threshold must be within 0..1, got {threshold}")
    a, b = _decode(png_a, "A"), _decode(png_b, "B")
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    a, b = _pad(a, h, w), _pad(b, h, w)
    changed = np.zeros((h, w), dtype=bool)
    aa = np.zeros((h, w), dtype=bool)
    # Only pixels whose RGBA differs can exceed the threshold, so measure just those (a page diff is sparse).
    ys, xs = np.nonzero(_packed(a) != _packed(b))
    if ys.size:
        over = _yiq_delta(_on_white(a[ys, xs]), _on_white(b[ys, xs])) > MAX_YIQ_DELTA * threshold * threshold
        ys, xs = ys[over], xs[over]
        if include_aa:
            changed[ys, xs] = True
        else:
            is_aa = _antialiased(a, b, ys, xs) | _antialiased(b, a, ys, xs)
            changed[ys[~is_aa], xs[~is_aa]] = True
            aa[ys[is_aa], xs[is_aa]] = True
    count = int(changed.sum())
    return VisualDiff(count, count / (w * h), (w, h), a, b, changed, aa)


def changed_regions(changed: NDArray[np.bool_]) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, width, height) around groups of changed pixels: cells of CELL px holding a change, joined
    when fewer than GAP cells apart, each box shrunk to the changed pixels it holds."""
    h, w = changed.shape
    if not changed.any():
        return []
    gh, gw = -(-h // CELL), -(-w // CELL)
    padded = np.zeros((gh * CELL, gw * CELL), dtype=bool)
    padded[:h, :w] = changed
    cells: NDArray[np.bool_] = np.asarray(padded.reshape(gh, CELL, gw, CELL).any(axis=(1, 3)), dtype=bool)
    near = cells.copy()
    for dy in range(-GAP, GAP + 1):
        for dx in range(-GAP, GAP + 1):
            near[max(dy, 0):gh + min(dy, 0), max(dx, 0):gw + min(dx, 0)] |= \
                cells[max(-dy, 0):gh + min(-dy, 0), max(-dx, 0):gw + min(-dx, 0)]
    label = np.zeros((gh, gw), dtype=np.int32)
    boxes: list[tuple[int, int, int, int]] = []
    for cy, cx in zip(*np.nonzero(cells), strict=True):
        if label[cy, cx]:
            continue
        # Flood over the widened cells; the box spans only the cells that really changed.
        n = len(boxes) + 1
        label[cy, cx] = n
        todo = deque([(int(cy), int(cx))])
        y0, x0, y1, x1 = int(cy), int(cx), int(cy), int(cx)
        while todo:
            y, x = todo.popleft()
            if cells[y, x]:
                y0, x0, y1, x1 = min(y0, y), min(x0, x), max(y1, y), max(x1, x)
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    if 0 <= ny < gh and 0 <= nx < gw and near[ny, nx] and not label[ny, nx]:
                        label[ny, nx] = n
                        todo.append((ny, nx))
        part = changed[y0 * CELL:(y1 + 1) * CELL, x0 * CELL:(x1 + 1) * CELL]
        rows, cols = np.nonzero(np.asarray(part.any(axis=1)))[0], np.nonzero(np.asarray(part.any(axis=0)))[0]
        top, left = y0 * CELL + int(rows[0]), x0 * CELL + int(cols[0])
        boxes.append((left, top, int(cols[-1] - cols[0]) + 1, int(rows[-1] - rows[0]) + 1))
    boxes = sorted(boxes, key=lambda b: -b[2] * b[3])[:MAX_REGIONS]
    return sorted(boxes, key=lambda b: (b[1], b[0]))


def _decode(png: bytes, which: str) -> NDArray[np.uint8]:
    try:
        img = Image.open(io.BytesIO(png))
        if img.width > MAX_SIDE or img.height > MAX_SIDE:
            raise VisualError("image_too_large", f"image {which} is {img.width}x{img.height}; at most {MAX_SIDE}")
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, VisualError):
            raise
        raise VisualError("invalid_image", f"image {which} does not decode: {exc}") from exc


def _pad(img: NDArray[np.uint8], h: int, w: int) -> NDArray[np.uint8]:
    if img.shape[:2] == (h, w):
        return img
    # Opaque white: what transparency measures as anyway, and it keeps a padded page on the opaque fast path.
    out = np.full((h, w, 4), 255, dtype=np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return out


def _on_white(img: NDArray[np.uint8]) -> F64:
    """RGB blended over white by alpha, as pixelmatch does before measuring."""
    rgb = img[..., :3].astype(np.float64)
    if bool((img[..., 3] == 255).all()):  # screenshots are opaque: nothing to blend
        return rgb
    alpha = img[..., 3:4].astype(np.float64) / 255.0
    return np.where(alpha < 1.0, 255.0 + (rgb - 255.0) * alpha, rgb)


_LUMA = (0.29889531, 0.58662247, 0.11448223)


def _rgb8(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """RGB over white as bytes; a screenshot is opaque, so usually just its colour channels."""
    if bool((img[..., 3] == 255).all()):
        return img[..., :3]
    return np.clip(_on_white(img), 0, 255).astype(np.uint8)


def _luma(rgb: F64) -> F64:
    return rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]


def _yiq_delta(a: F64, b: F64) -> F64:
    """pixelmatch's weighted YIQ distance (squared units, 0..35215)."""
    y = _luma(a) - _luma(b)
    i = (a[..., 0] * 0.59597799 - a[..., 1] * 0.27417610 - a[..., 2] * 0.32180189) - (
        b[..., 0] * 0.59597799 - b[..., 1] * 0.27417610 - b[..., 2] * 0.32180189)
    q = (a[..., 0] * 0.21147017 - a[..., 1] * 0.52261711 + a[..., 2] * 0.31114694) - (
        b[..., 0] * 0.21147017 - b[..., 1] * 0.52261711 + b[..., 2] * 0.31114694)
    result: F64 = 0.5053 * y * y + 0.299 * i * i + 0.1957 * q * q
    return result


def _antialiased(img: NDArray[np.uint8], other: NDArray[np.uint8],
                 ys: NDArray[np.intp], xs: NDArray[np.intp]) -> NDArray[np.bool_]:
    """pixelmatch's test, for the candidate pixels only: one darker and one brighter neighbour, and that
    neighbour sits in a flat area in both images (so this pixel is an edge's blend, not a change)."""
    n = ys.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    h, w = img.shape[:2]
    # Many candidates (a recoloured page): one pass over the whole image beats nine gathers per candidate.
    if 4 * n > h * w:
        full = _luma(_on_white(img))

        def luma_at(yy: NDArray[np.intp], xx: NDArray[np.intp]) -> F64:
            return full[yy, xx]
    else:
        def luma_at(yy: NDArray[np.intp], xx: NDArray[np.intp]) -> F64:
            return _luma(_on_white(img[yy, xx]))
    centre = luma_at(ys, xs)
    zeroes = _on_border(ys, xs, h, w).astype(np.int64)
    deltas = np.zeros((n, 8))
    nx = np.zeros((n, 8), dtype=np.intp)
    ny = np.zeros((n, 8), dtype=np.intp)
    for k, (dx, dy) in enumerate(_NEIGHBOURS):
        x2, y2 = xs + dx, ys + dy
        inside = (x2 >= 0) & (x2 < w) & (y2 >= 0) & (y2 < h)
        x2c, y2c = np.clip(x2, 0, w - 1), np.clip(y2, 0, h - 1)
        d = np.where(inside, centre - luma_at(y2c, x2c), 0.0)
        zeroes += inside & (d == 0)
        deltas[:, k], nx[:, k], ny[:, k] = d, x2c, y2c
    # argmin/argmax take the first extreme in scan order, as pixelmatch's strict < and > do.
    rows = np.arange(n)
    kmin, kmax = deltas.argmin(axis=1), deltas.argmax(axis=1)
    possible = (zeroes <= 2) & (deltas[rows, kmin] < 0) & (deltas[rows, kmax] > 0)
    pa, pb = _packed(img), _packed(other)
    dy_, dx_ = ny[rows, kmin], nx[rows, kmin]
    by_, bx_ = ny[rows, kmax], nx[rows, kmax]
    if 4 * n > h * w:
        ma, mb = _many_siblings_map(pa), _many_siblings_map(pb)
        darkest_flat = ma[dy_, dx_] & mb[dy_, dx_]
        brightest_flat = ma[by_, bx_] & mb[by_, bx_]
    else:
        darkest_flat = _many_siblings(pa, dy_, dx_) & _many_siblings(pb, dy_, dx_)
        brightest_flat = _many_siblings(pa, by_, bx_) & _many_siblings(pb, by_, bx_)
    result: NDArray[np.bool_] = possible & (darkest_flat | brightest_flat)
    return result


def _many_siblings(packed: NDArray[np.uint32], ys: NDArray[np.intp], xs: NDArray[np.intp]) -> NDArray[np.bool_]:
    """Per given pixel: more than 2 of its neighbours share its exact RGBA (an image edge counts as one)."""
    h, w = packed.shape
    centre = packed[ys, xs]
    count = _on_border(ys, xs, h, w).astype(np.int64)
    for dx, dy in _NEIGHBOURS:
        x2, y2 = xs + dx, ys + dy
        inside = (x2 >= 0) & (x2 < w) & (y2 >= 0) & (y2 < h)
        count += inside & (packed[np.clip(y2, 0, h - 1), np.clip(x2, 0, w - 1)] == centre)
    result: NDArray[np.bool_] = count > 2
    return result


def _many_siblings_map(packed: NDArray[np.uint32]) -> NDArray[np.bool_]:
    """_many_siblings for every pixel at once, by shifting the whole image."""
    h, w = packed.shape
    count = np.zeros((h, w), dtype=np.int8)
    count[[0, -1], :] = 1
    count[:, [0, -1]] = 1
    padded = np.pad(packed, 1)
    inside = np.pad(np.ones((h, w), dtype=bool), 1)
    for dx, dy in _NEIGHBOURS:
        window = (slice(1 + dy, 1 + dy + h), slice(1 + dx, 1 + dx + w))
        count += inside[window] & (padded[window] == packed)
    result: NDArray[np.bool_] = count > 2
    return result


def _on_border(ys: NDArray[np.intp], xs: NDArray[np.intp], h: int, w: int) -> NDArray[np.bool_]:
    result: NDArray[np.bool_] = (xs == 0) | (xs == w - 1) | (ys == 0) | (ys == h - 1)
    return result


def _packed(img: NDArray[np.uint8]) -> NDArray[np.uint32]:
    """One uint32 per RGBA pixel, for exact equality tests."""
    h, w = img.shape[:2]
    packed: NDArray[np.uint32] = np.ascontiguousarray(img).view(np.uint32).reshape(h, w)
    return packed
