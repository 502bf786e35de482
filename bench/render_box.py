"""Benchmark: the render check in its box (issue 23) against the one before it, interleaved in one run.

Before: the code of `--base` (default: the merge base with main), as daemon/publish/screens.py ran it: Chromium in
the daemon's bubblewrap view with the network on, as root, --no-sandbox, loading the preview over loopback HTTP.
After: daemon/project/renderbox.py: its own network namespace and user, Chromium's sandbox where the kernel allows
it, every request paused and answered by the daemon from the deployment's files.
Prints the median wall time of each and the ratio after/before. Run as root (the box switches users).
Usage: .venv/bin/python bench/render_box.py [--rounds 3] [--base <commit>]
"""

from __future__ import annotations

import argparse
import http.server
import importlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.project import isolation, renderbox  # noqa: E402
from daemon.render import check_page  # noqa: E402
from daemon.render.origin import DirSource  # noqa: E402
from sandbox import fsview, safepath  # noqa: E402
from tests.support import make_config  # noqa: E402

LABEL = "bench-01abc"


def site(root: Path) -> None:
    """A small built app: a page, a 200 KB script, a stylesheet and two images."""
    root.mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "index.html").write_text(
        "<!doctype html><html><head><link rel=stylesheet href=/assets/app.css></head><body><h1>Bench page</h1>"
        "<p>Some text.</p><img src=/assets/a.svg><img src=/assets/b.svg><div id=app></div>"
        "<script src=/assets/app.js></script></body></html>")
    (root / "assets" / "app.css").write_text("body{font-family:sans-serif;margin:24px} img{width:120px}")
    (root / "assets" / "app.js").write_text("var pad = '" + "x" * 200_000 + "';\n"
                                            "document.getElementById('app').textContent = 'rendered ' + pad.length;")
    for name, colour in (("a.svg", "#36c"), ("b.svg", "#c63")):
        (root / "assets" / name).write_text(f"<svg xmlns='http://www.w3.org/2000/svg' width='120' height='80'>"
                                            f"<rect width='120' height='80' fill='{colour}'/></svg>")


def before_module(base: str, into: Path) -> Any:
    """The base commit's daemon/render (browser.py, check.py) as the package `render_before`."""
    pkg = into / "render_before"
    pkg.mkdir()
    for name in ("browser.py", "check.py"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{base}:daemon/render/{name}"], check=True,
                              capture_output=True, text=True).stdout
        (pkg / name).write_text(text.replace("daemon.render.browser", "render_before.browser"))
    (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(into))
    return importlib.import_module("render_before.check")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", default="")
    args = ap.parse_args()
    base = args.base or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
                                       capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        cfg = make_config(tmp)
        data = tmp / "data"
        deployment = data / "previews" / LABEL
        site(deployment)
        scratch = safepath.ensure_dir(data, ["tmp", "render"])
        store = data / "store"
        old = before_module(base, tmp)

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a: object, **k: object) -> None:
                super().__init__(*a, directory=str(deployment), **k)  # type: ignore[arg-type]

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        old_url = f"http://127.0.0.1:{server.server_address[1]}/"
        old_wrap = partial(fsview.wrap, cwd=scratch, view=isolation.scratch_view(data, store, scratch,
                                                                                 tmp_bytes=1 << 30), network=True)
        old_home = safepath.ensure_dir(scratch, ["home"])
        import sandbox

        old_env = sandbox.safe_env({"PATH": "/usr/local/bin:/usr/bin:/bin"}, home=old_home)

        def before() -> Any:
            return old.check_page(old_url, workdir=scratch, env=old_env, wrap=old_wrap)

        def after() -> Any:
            box = renderbox.browser_box(cfg, data, store, scratch, tmp_bytes=1 << 30)
            return check_page(f"http://{LABEL}.localhost:8080/", source=DirSource(deployment), workdir=scratch,
                              env=box.env, wrap=box.wrap, chromium_sandbox=box.sandbox, private_tmp=box.private_tmp)

        print(f"base {base[:10]}; after: {renderbox.browser_box(cfg, data, store, scratch, tmp_bytes=1 << 30).note}")
        times: dict[str, list[float]] = {"before": [], "after": []}
        try:
            before()  # warm the page cache for both
            for _ in range(args.rounds):
                for name, fn in (("before", before), ("after", after)):
                    s, r = timed(fn)
                    times[name].append(s)
                    print(f"  {name:6} {s * 1000:8.0f} ms  status={r.status}")
        finally:
            server.shutdown()
            server.server_close()
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"render check before (network on, root)            {b * 1000:8.0f} ms (median of {args.rounds})")
        print(f"render check after (own netns and user, gated)    {a * 1000:8.0f} ms (median of {args.rounds})")
        print(f"ratio after/before                                {a / b:8.2f}x")


if __name__ == "__main__":
    main()
