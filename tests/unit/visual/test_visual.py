"""Visual diff: counts against hand-computed cases and against the reference pixelmatch port, and the PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pixelmatch import pixelmatch

from daemon.render.visual import BOX_COLOUR, CELL, GAP, VisualError, changed_regions, compare


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _canvas(w: int = 200, h: int = 100, bg: str | tuple[int, ...] = "white") -> Image.Image:
    return Image.new("RGB", (w, h), bg)


def _box(x: int, y: int, size: int = 20, w: int = 200, h: int = 100) -> bytes:
    img = _canvas(w, h)
    ImageDraw.Draw(img).rectangle((x, y, x + size - 1, y + size - 1), fill=(30, 60, 200))
    return _png(img)


def _text(text: str, offset: float = 0.0, size: tuple[int, int] = (160, 48)) -> bytes:
    """Text drawn at 4x and box-filtered down, so a fractional offset gives real anti-aliased edges."""
    w, h = size
    img = _canvas(4 * w, 4 * h)
    font = ImageFont.load_default(size=88)
    ImageDraw.Draw(img).text((24 + round(4 * offset), 32), text, fill=(20, 20, 20), font=font)
    return _png(img.resize(size, Image.Resampling.BOX))


def test_identical_images_have_no_change() -> None:
    a = _text("Hello, world")
    d = compare(a, a)
    assert (d.changed_pixels, d.changed_ratio, d.size) == (0, 0.0, (160, 48))
    assert d.as_dict() == {"changedPixels": 0, "changedRatio": 0.0, "size": [160, 48], "regions": []}


def test_moved_box_changes_the_uncovered_and_newly_covered_strips() -> None:
    # A 20x20 box moved 5 px right: a 5x20 strip on each side changes.
    d = compare(_box(10, 10), _box(15, 10))
    assert d.changed_pixels == 2 * 5 * 20
    assert d.changed_ratio == pytest.approx(200 / (200 * 100))
    assert compare(_box(10, 10), _box(15, 10), include_aa=True).changed_pixels == 200


def test_colour_change_counts_every_pixel_of_the_region() -> None:
    a, b = _canvas(), _canvas()
    ImageDraw.Draw(a).rectangle((50, 20, 89, 59), fill=(200, 40, 40))
    ImageDraw.Draw(b).rectangle((50, 20, 89, 59), fill=(40, 160, 40))
    assert compare(_png(a), _png(b)).changed_pixels == 40 * 40


def test_small_colour_shift_is_under_the_threshold() -> None:
    a, b = _canvas(bg=(200, 200, 200)), _canvas(bg=(203, 200, 200))
    assert compare(_png(a), _png(b)).changed_pixels == 0
    assert compare(_png(a), _png(b), threshold=0.0).changed_pixels == 200 * 100


def test_anti_aliased_edge_is_tolerated_unless_included() -> None:
    # A black block whose edge grows by one grey (blended) column: every grey pixel sits between a flat
    # dark area and a flat bright area, which is pixelmatch's definition of anti-aliasing.
    a, b = _canvas(), _canvas()
    for img in (a, b):
        ImageDraw.Draw(img).rectangle((40, 20, 79, 79), fill="black")
    ImageDraw.Draw(b).line((80, 21, 80, 78), fill=(128, 128, 128))
    assert compare(_png(a), _png(b)).changed_pixels == 0
    assert compare(_png(a), _png(b), include_aa=True).changed_pixels == 58


@pytest.mark.parametrize("include_aa", [False, True])
@pytest.mark.parametrize(("text_a", "text_b", "offset"), [
    ("Hello, world", "Hello, world", 0.25),
    ("Hello, world", "Hello, word!", 0.0),
    ("Preview v1", "Preview v2", 1.0),
])
def test_matches_the_reference_pixelmatch(text_a: str, text_b: str, offset: float, include_aa: bool) -> None:
    a, b = _text(text_a), _text(text_b, offset)
    ia = Image.open(io.BytesIO(a)).convert("RGBA")
    ib = Image.open(io.BytesIO(b)).convert("RGBA")
    expected = pixelmatch(list(ia.tobytes()), list(ib.tobytes()), ia.width, ia.height, includeAA=include_aa)
    assert expected > 0 or not include_aa
    assert compare(a, b, include_aa=include_aa).changed_pixels == expected


@pytest.mark.parametrize("include_aa", [False, True])
def test_matches_the_reference_when_most_pixels_change(include_aa: bool) -> None:
    # Most pixels differing takes the whole-image path of the anti-aliasing test; it must agree too.
    a = _text("Hello, world")
    shifted = Image.open(io.BytesIO(_text("Hello, world", 0.25))).convert("RGB")
    b = _png(Image.eval(shifted, lambda c: 255 - c))
    ia, ib = (Image.open(io.BytesIO(x)).convert("RGBA") for x in (a, b))
    expected = pixelmatch(list(ia.tobytes()), list(ib.tobytes()), ia.width, ia.height, includeAA=include_aa)
    assert expected > ia.width * ia.height / 2
    assert compare(a, b, include_aa=include_aa).changed_pixels == expected


def test_sub_pixel_shift_of_text_is_mostly_anti_aliasing() -> None:
    a, b = _text("Hello, world"), _text("Hello, world", 0.25)
    tolerant, strict = compare(a, b).changed_pixels, compare(a, b, include_aa=True).changed_pixels
    assert strict > 0
    assert tolerant < strict / 2


def test_transparency_is_measured_over_white() -> None:
    a = Image.new("RGBA", (30, 10), (0, 0, 0, 0))
    b = Image.new("RGBA", (30, 10), (255, 255, 255, 255))
    assert compare(_png(a), _png(b)).changed_pixels == 0


def test_different_sizes_are_padded_to_the_larger() -> None:
    small = _canvas(100, 50, bg=(120, 120, 120))
    large = _canvas(120, 60, bg=(120, 120, 120))
    d = compare(_png(small), _png(large))
    assert d.size == (120, 60)
    assert d.changed_pixels == 120 * 60 - 100 * 50
    assert compare(_png(large), _png(small)).changed_pixels == d.changed_pixels
    out = Image.open(io.BytesIO(d.render_png()))
    assert out.size == (3 * 120, 60)


def test_render_png_shows_a_b_and_the_highlighted_diff() -> None:
    d = compare(_box(10, 10), _box(15, 10))
    out = Image.open(io.BytesIO(d.render_png()))
    assert out.format == "PNG" and out.size == (3 * 200, 100) and out.mode == "RGB"
    px = np.asarray(out)
    w = 200
    assert tuple(px[20, 12]) == (30, 60, 200)            # A: box still at x=10
    assert tuple(px[20, w + 12]) == (255, 255, 255)      # B: box moved away from x=12
    diff = px[:, 2 * w:]
    red = np.all(diff == (255, 0, 0), axis=2)
    assert red.sum() == 200
    assert red[10:30, 10:15].all() and red[10:30, 30:35].all()
    # Unchanged pixels are a faded grey copy: the box interior reads lighter than the box itself.
    inside = diff[20, 20]
    assert inside[0] == inside[1] == inside[2] and inside[0] > 200


def test_render_png_of_identical_images_has_no_red() -> None:
    a = _text("same")
    px = np.asarray(Image.open(io.BytesIO(compare(a, a).render_png())))
    assert not np.all(px[:, 320:] == (255, 0, 0), axis=2).any()


@pytest.mark.parametrize("data", [b"", b"not a png", _png(_canvas())[:40]])
def test_undecodable_input_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(VisualError) as err:
        compare(data, _png(_canvas()))
    assert err.value.code == "invalid_image"
    assert "image A" in err.value.message


def test_threshold_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(VisualError) as err:
        compare(_png(_canvas()), _png(_canvas()), threshold=1.5)
    assert err.value.code == "invalid_threshold"


def _page(w: int, h: int, blocks: list[tuple[int, int, int, int, tuple[int, int, int]]]) -> bytes:
    """A white page of w x h with filled rectangles (x, y, width, height, colour)."""
    img = _canvas(w, h)
    draw = ImageDraw.Draw(img)
    for x, y, bw, bh, colour in blocks:
        draw.rectangle((x, y, x + bw - 1, y + bh - 1), fill=colour)
    return _png(img)


HEADER = (0, 0, 1280, 80, (20, 30, 60))


def test_a_section_added_far_below_the_fold_is_found_and_boxed() -> None:
    """Whole pages: B has a new section at y=3250 and is 200 px taller; the region names where."""
    a = _page(1280, 3200, [HEADER, (100, 2900, 600, 60, (200, 80, 40))])
    b = _page(1280, 3400, [HEADER, (100, 2900, 600, 60, (200, 80, 40)), (100, 3250, 600, 120, (40, 120, 200))])
    d = compare(a, b)
    assert d.size == (1280, 3400)
    # The share is of the whole page: the new block (over A's padded white tail) and nothing above it.
    assert d.changed_pixels == 600 * 120
    assert d.changed_ratio == pytest.approx(600 * 120 / (1280 * 3400))
    assert d.regions == [(100, 3250, 600, 120)]
    assert d.as_dict()["regions"] == [{"x": 100, "y": 3250, "width": 600, "height": 120}]
    px = np.asarray(Image.open(io.BytesIO(d.render_png())))
    assert px.shape == (3400, 3 * 1280, 3)
    box = np.all(px == BOX_COLOUR, axis=2)
    for panel in (1280, 2560):  # on B and on the diff, just outside the changed block
        assert box[3247:3250, panel + 400].all() and box[3370:3373, panel + 400].all()
        assert box[3300, panel + 97:panel + 100].all()
    assert not box[:, :1280].any()  # A stays as it was
    assert not box[:3240].any()


def test_regions_split_where_changes_are_far_apart_and_merge_when_close() -> None:
    changed = np.zeros((1000, 400), dtype=bool)
    changed[10:20, 10:30] = True
    changed[10:20, 10 + 30 + CELL:60 + CELL] = True    # within GAP cells: the same region
    changed[700:710, 300:320] = True                  # far below: its own region
    regions = changed_regions(changed)
    assert regions == [(10, 10, 50 + CELL, 10), (300, 700, 20, 10)]
    assert GAP * CELL > CELL  # the merge above relies on a gap of more than one cell
    assert changed_regions(np.zeros((50, 50), dtype=bool)) == []


def test_many_scattered_changes_keep_the_largest_regions() -> None:
    changed = np.zeros((8000, 1280), dtype=bool)
    for i in range(80):
        y = 40 + i * 96
        changed[y:y + 1 + i % 5, 20:22] = True
    regions = changed_regions(changed)
    assert len(regions) == 50
    assert regions == sorted(regions, key=lambda r: (r[1], r[0]))
    assert min(r[3] for r in regions) == 2 and sum(r[3] == 2 for r in regions) == 2  # the smallest went first
