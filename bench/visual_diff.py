"""Benchmark: daemon.visual.compare against the pure-Python `pixelmatch` port on two 1280x800 screenshots, same run.

Usage: .venv/bin/python bench/visual_diff.py [--rounds 5] [--reference-rounds 1] [--no-render-check]
       [--version-rounds 3]

Draws two page-like 1280x800 screenshots with Pillow (header, text, boxes; the second with a recoloured
button, a moved card and edited text), times compare() (best of --rounds), render_png(), and the reference
`pixelmatch` on the same pixels, checks both count the same pixels, and prints the ratio. Then times one
check_page of a small page served on loopback by headless Chromium (skipped with --no-render-check).

Then the cost per version of what the daemon does for each one, full page against first screen in the same
run: check_page with its desktop (1280) and mobile (390) screenshots of a landing page (sizes printed), then the
visual diff against the previous version (compare at both widths and the desktop diff PNG). The second
version adds a section at the bottom, which only the full page sees. Medians of --version-rounds.
"""

from __future__ import annotations

import argparse
import http.server
import io
import statistics
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


def _serve(site: str) -> http.server.ThreadingHTTPServer:
    """A quiet static server for `site` on a free loopback port, in a daemon thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=site, **k)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

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

        server = _serve(site)
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


def landing_page(version: int) -> str:
    """A template-like landing page: a 100vh hero, eight content sections, a footer; version 2 adds pricing."""
    cards = "".join(f"<div class=card><h3>Item {i}</h3><p>Fresh every morning, made by hand.</p></div>"
                    for i in range(3))
    sections = "".join(f"<section><h2>Section {n}</h2><p>A closer look at what we do.</p>"
                       f"<div class=grid>{cards}</div></section>" for n in range(8))
    extra = ("<section style='background:#eef4ff'><h2>Pricing</h2><div class=grid>"
             + "".join(f"<div class=card><h3>Plan {i}</h3><p>${9 * (i + 1)}</p></div>" for i in range(3))
             + "</div></section>") if version == 2 else ""
    return ("<!doctype html><html><head><meta name=viewport content='width=device-width'><style>"
            "body{margin:0;font-family:sans-serif}header{height:100vh;background:#fde7c0;display:grid;"
            "place-items:center;font-size:48px}section{padding:48px 24px}.grid{display:grid;gap:16px;"
            "grid-template-columns:repeat(auto-fill,minmax(260px,1fr))}.card{border:1px solid #ddd;"
            "border-radius:12px;padding:16px}footer{background:#222;color:#fff;padding:48px}</style></head>"
            f"<body><header>Baked from scratch</header>{sections}{extra}<footer>Bakery</footer></body></html>")


def bench_per_version(rounds: int) -> None:
    """Screenshot + diff cost of one version, full page and first screen, and their ratio (same run)."""
    with tempfile.TemporaryDirectory() as site:
        for v in (1, 2):
            Path(site, f"v{v}.html").write_text(landing_page(v))

        server = _serve(site)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            check_page(f"{base}/v1.html")  # warm the disk cache for Chromium's first start
            results: dict[bool, dict[str, list[float]]] = {True: {}, False: {}}
            seen: dict[bool, str] = {}
            for _ in range(rounds):
                for full in (False, True):  # interleaved, so load on the machine hits both alike
                    times = results[full]
                    old = check_page(f"{base}/v1.html", full_page=full).screenshots  # the previous version
                    t_shot = time.perf_counter()
                    new = check_page(f"{base}/v2.html", full_page=full).screenshots
                    t_diff = time.perf_counter()
                    d = compare(old["desktop"], new["desktop"])
                    m = compare(old["mobile"], new["mobile"])
                    png = d.render_png()
                    t_end = time.perf_counter()
                    times.setdefault("screens", []).append(t_diff - t_shot)
                    times.setdefault("diff", []).append(t_end - t_diff)
                    times.setdefault("total", []).append(t_end - t_shot)
                    size = Image.open(io.BytesIO(new["desktop"])).size
                    seen[full] = (f"desktop {size[0]}x{size[1]}, changed {d.changed_ratio:.2%} desktop / "
                                  f"{m.changed_ratio:.2%} mobile, {len(d.regions)} region(s), "
                                  f"diff PNG {len(png) // 1024} KiB")
        finally:
            server.shutdown()
            server.server_close()
    med = {full: {k: statistics.median(v) for k, v in r.items()} for full, r in results.items()}
    for full, label in ((False, "first screen"), (True, "full page")):
        print(f"per version, {label:12} screenshots {med[full]['screens'] * 1000:7.0f} ms  diff "
              f"{med[full]['diff'] * 1000:6.0f} ms  total {med[full]['total'] * 1000:7.0f} ms  ({seen[full]})")
    print(f"ratio full page / first screen: screenshots {med[True]['screens'] / med[False]['screens']:.2f}x, "
          f"diff {med[True]['diff'] / med[False]['diff']:.2f}x, total {med[True]['total'] / med[False]['total']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reference-rounds", type=int, default=1)
    ap.add_argument("--no-render-check", action="store_true")
    ap.add_argument("--version-rounds", type=int, default=3)
    args = ap.parse_args()
    bench_diff(args.rounds, args.reference_rounds)
    if not args.no_render_check:
        bench_render_check()
        bench_per_version(args.version_rounds)


if __name__ == "__main__":
    main()
