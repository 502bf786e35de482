"""The cost of the one door for build output (issue 23): exporting dist/ through sandbox.export into the staging dir
before the zip, against the same run's baselines on the same tree:

  copy      shutil.copytree(symlinks=True): a plain copy by path (what a copy without the fd checks costs)
  export    sandbox.export.export_tree: fd per component, fstat before reading, caps, names checked
  old zip   the zip as it was made before (rglob, is_symlink, zipfile.write by path from the workspace)
  new zip   export + zip_output of the staged copy (what a build pays now)

The tree looks like a Vite build: a few large JS/CSS chunks, many small assets, an index. Prints medians and the
ratios export/copy and (export + zip)/old zip.
Run: .venv/bin/python bench/output_export.py [--runs N] [--files N] [--mb N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.publish.artifacts import zip_output  # noqa: E402
from sandbox import export  # noqa: E402

CAPS = export.Caps(total_bytes=100 * 2**20)


def make_tree(root: Path, files: int, mb: int) -> None:
    """A dist/ of `files` files, about `mb` MiB: 5% large chunks hold 80% of the bytes, text-like (compressible)."""
    rnd = random.Random(7)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(500)]
    large = max(1, files // 20)
    sizes = [int(mb * 2**20 * 0.8 / large)] * large + [int(mb * 2**20 * 0.2 / (files - large))] * (files - large)
    (root / "assets" / "img").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><div id=root></div>")
    for i, size in enumerate(sizes):
        sub = "assets" if i < large else "assets/img"
        buf = bytearray()
        while len(buf) < size:
            buf += rnd.choice(words) + b" "
        (root / sub / f"f{i:05d}.js").write_bytes(bytes(buf[:size]))


def old_zip_output(out_dir: Path, dest: Path) -> int:
    """zip_output as it was before the staging copy (baseline)."""
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(out_dir.rglob("*")):
            rel = path.relative_to(out_dir)
            if any(part.startswith(".git") or part in ("node_modules", ".pnpm-store", "pnpm-store")
                   for part in rel.parts):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            zf.write(path, rel.as_posix())
    tmp.replace(dest)
    return dest.stat().st_size


def timed(fn: Callable[[], object], clean: Callable[[], None]) -> float:
    clean()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    clean()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--mb", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        work = tmp / "work"
        make_tree(work / "dist", args.files, args.mb)
        staged, copied, zpath = tmp / "staged", tmp / "copied", tmp / "a.zip"

        def clean() -> None:
            for p in (staged, copied):
                shutil.rmtree(p, ignore_errors=True)
            zpath.unlink(missing_ok=True)

        def new_zip() -> None:
            export.export_tree(work, ["dist"], staged, CAPS)
            zip_output(staged, zpath)

        runs: dict[str, list[float]] = {"copy": [], "export": [], "old zip": [], "new zip": []}
        for _ in range(args.runs):  # alternated, so drift on a shared machine hits every variant alike
            runs["copy"].append(timed(lambda: shutil.copytree(work / "dist", copied, symlinks=True), clean))
            runs["export"].append(timed(lambda: export.export_tree(work, ["dist"], staged, CAPS), clean))
            runs["old zip"].append(timed(lambda: old_zip_output(work / "dist", zpath), clean))
            runs["new zip"].append(timed(new_zip, clean))
        med = {k: statistics.median(v) for k, v in runs.items()}
        total = sum(f.stat().st_size for f in (work / "dist").rglob("*") if f.is_file())
        print(f"tree: {args.files + 1} files, {total / 2**20:.1f} MiB; medians of {args.runs} runs "
              f"(os.cpu_count()={os.cpu_count()})")
        for k, v in med.items():
            print(f"  {k:8s} {v * 1000:8.1f} ms")
        print(f"export vs plain copytree: {med['export'] / med['copy']:.2f}x")
        print(f"export + zip (now) vs old zip from the workspace: {med['new zip'] / med['old zip']:.2f}x "
              f"(+{(med['new zip'] - med['old zip']) * 1000:.1f} ms per build)")


if __name__ == "__main__":
    main()
