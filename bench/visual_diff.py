"""Benchmark: daemon.visual.compare against the pure-Python `pixelmatch` port on two 1280x800 screenshots, same run.

Usage: .venv/bin/python bench/visual_diff.py [--rounds 5] [--reference-rounds 1] [--no-render-check]

Draws two page-like 1280x800 screenshots with Pillow (header, text, boxes; the second with a recoloured
button, a moved card and edited text), times compare() (best of --rounds), render_png(), and the reference
`pixelmatch` on the same pixels, checks both count the same pixels, and prints the ratio. Then times one
check_page of a small page served on loopback by headless Chromium (skipped with --no-render-check).
"""

from __future__ import annotations

import argparse
import http.server
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.render import check_page  # noqa: E402
from daemon.render.visual import compare  # noqa: E402

W, H = 1280, 800


def screenshot(variant: int) -> bytes:
    """A page-like PNG; variant 1 recolours the button, moves a card and edits a line of text."""
    img = Image.new("RGB", (W, H), (248, 248, 252))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=18)
    title = ImageFont.load_default(size=34)
    d.rectangle((0, 0, W, 64), fill=(24, 28, 48))
    d.text((32, 14), "previewd demo app", fill="white", font=title)
    d.rounded_rectangle((1080, 14, 1248, 50), 8, fill=(60, 120, 230) if variant == 0 else (40, 170, 90))
    d.text((1110, 22), "Sign up", fill="white", font=font)
    for row in range(14):
        line = f"Line {row}: the quick brown fox jumps over the lazy dog, version {variant if row == 5 else 0}"
        d.text((48, 100 + row * 30), line, fill=(40, 40, 40), font=font)
    x = 760 if variant == 0 else 790
    d.rounded_rectangle((x, 120, x + 420, 420), 16, fill="white", outline=(210, 210, 220), width=2)
    d.ellipse((x + 40, 160, x + 140, 260), fill=(230, 120, 60))
    d.text((x + 160, 190), "Card title", fill=(20, 20, 20), font=title)
    d.rectangle((48, 560, 1232, 760), fill=(235, 238, 245))
    return _png(img)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def best_of(rounds: int, fn: object) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(rounds):
        t = time.perf_counter()
        result = fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best, result


def bench_diff(rounds: int, ref_rounds: int) -> None:
    a, b = screenshot(0), screenshot(1)
    ours_s, diff = best_of(rounds, lambda: compare(a, b))
    png_s, out = best_of(rounds, lambda: diff.render_png())  # type: ignore[attr-defined]
    same_s, _ = best_of(rounds, lambda: compare(a, a))
    print(f"compare (numpy)        {ours_s * 1000:9.1f} ms  changed={diff.changed_pixels} "  # type: ignore[attr-defined]
          f"ratio={diff.changed_ratio:.4f}")  # type: ignore[attr-defined]
    print(f"compare identical      {same_s * 1000:9.1f} ms")
    print(f"render_png             {png_s * 1000:9.1f} ms  ({len(out) // 1024} KiB, {3 * W}x{H})")  # type: ignore[arg-type]
    try:
        from pixelmatch import pixelmatch
    except ImportError:
        print("pixelmatch (reference)  not installed: pip install pixelmatch")
        return
    ia, ib = (Image.open(io.BytesIO(x)).convert("RGBA") for x in (a, b))
    la, lb = list(ia.tobytes()), list(ib.tobytes())
    ref_s, ref_count = best_of(ref_rounds, lambda: pixelmatch(la, lb, W, H))
    print(f"pixelmatch (reference) {ref_s * 1000:9.1f} ms  changed={ref_count}")
    print(f"ratio reference/ours   {ref_s / ours_s:9.1f}x  counts {'agree' if ref_count == diff.changed_pixels else 'DIFFER'}")  # type: ignore[attr-defined]  # noqa: E501


def bench_render_check() -> None:
    with tempfile.TemporaryDirectory() as site:
        Path(site, "index.html").write_text(
            "<!doctype html><html><body><h1>Small page</h1><p>Some text.</p>"
            "<div style='width:200px;height:100px;background:#36c'></div></body></html>")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: object, **k: object) -> None:
                super().__init__(*a, directory=site, **k)  # type: ignore[arg-type]

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            for label in ("first", "second"):
                t = time.perf_counter()
                r = check_page(url)
                print(f"check_page ({label})     {(time.perf_counter() - t) * 1000:9.1f} ms  status={r.status} "
                      f"({r.detail})")
        finally:
            server.shutdown()
            server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reference-rounds", type=int, default=1)
    ap.add_argument("--no-render-check", action="store_true")
    args = ap.parse_args()
    bench_diff(args.rounds, args.reference_rounds)
    if not args.no_render_check:
        bench_render_check()


if __name__ == "__main__":
    main()
