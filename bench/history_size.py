"""Benchmark: history repo size after 50 small edits vs 50 source zips; dist checkout time vs copytree.

Run: .venv/bin/python bench/history_size.py [--versions 50] [--repeats 7]
Prints one line per figure; the ratios compare numbers measured in this same run.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.history import ProjectRepo

WORDS = ("const let return props state value item list count user title render effect memo ref data").split()  # noqa: SIM905


def _code_file(rng: random.Random, name: str, lines: int) -> str:
    out = [f"// {name}", "import { useState } from 'react'", ""]
    for i in range(lines):
        a, b, c = rng.sample(WORDS, 3)
        out.append(f"  const {a}{i} = {b}.{c}({rng.randint(0, 999)}) // {rng.choice(WORDS)} {rng.choice(WORDS)}")
    out.append(f"export default function {name.split('.')[0].replace('/', '_')}() {{ return null }}")
    return "\n".join(out) + "\n"


def make_project(root: Path, rng: random.Random) -> list[str]:
    """Write a ~40-file Vite/React-like project; return the paths that edits will touch."""
    files: dict[str, str] = {
        "package.json": '{\n  "name": "bench",\n  "private": true,\n  "scripts": {"build": "vite build"},\n'
        '  "dependencies": {"react": "^18.3.1", "react-dom": "^18.3.1"}\n}\n',
        "index.html": '<!doctype html>\n<html>\n<body><div id="root"></div>\n'
        '<script type="module" src="/src/main.tsx"></script></body>\n</html>\n',
        "vite.config.ts": "import { defineConfig } from 'vite'\nexport default defineConfig({})\n",
        "tsconfig.json": '{\n  "compilerOptions": {"jsx": "react-jsx", "strict": true}\n}\n',
        "README.md": "# bench\n\nA generated project.\n",
        "public/favicon.svg": '<svg xmlns="http://www.w3.org/2000/svg"><circle r="8"/></svg>\n',
        "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"
        + "".join(
            f"  /pkg-{i}@1.{i}.0:\n    resolution: {{integrity: sha512-{rng.randbytes(48).hex()}}}\n"
            for i in range(150)
        ),
    }
    editable = []
    for i in range(24):
        path = f"src/components/Widget{i}.tsx"
        files[path] = _code_file(rng, f"Widget{i}", rng.randint(30, 90))
        editable.append(path)
    for i in range(4):
        files[f"src/lib/util{i}.ts"] = _code_file(rng, f"util{i}", 40)
    for i in range(5):
        files[f"src/styles/s{i}.css"] = "".join(
            f".c{j} {{ margin: {j}px; color: #{rng.randint(0, 0xFFFFFF):06x}; }}\n" for j in range(60)
        )
    files["src/main.tsx"] = _code_file(rng, "main", 10)
    files["src/App.tsx"] = _code_file(rng, "App", 50)
    editable.append("src/App.tsx")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return editable


def small_edit(root: Path, rng: random.Random, editable: list[str], n: int) -> None:
    """Change one line and add one line in one or two files, as a prompt tweak would."""
    for rel in rng.sample(editable, rng.choice([1, 1, 2])):
        lines = (root / rel).read_text().splitlines()
        k = rng.randrange(3, len(lines) - 1)
        lines[k] = f"  const edited{n} = '{rng.choice(WORDS)} {n}'"
        lines.insert(k + 1, f"  // version {n}: {rng.choice(WORDS)}")
        (root / rel).write_text("\n".join(lines) + "\n")


def fake_build(root: Path, rng: random.Random) -> None:
    """Write a dist dir like Vite's: a hashed app bundle from the sources, a constant vendor bundle."""
    dist = root / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    (dist / "assets").mkdir(parents=True)
    sources = b"".join(p.read_bytes() for p in sorted((root / "src").rglob("*")) if p.is_file())
    (dist / "assets" / f"index-{rng.randbytes(4).hex()}.js").write_bytes(sources.replace(b"\n", b";"))
    (dist / "assets" / "vendor-3f2a1b.js").write_bytes(random.Random(7).randbytes(300_000))
    (dist / "index.html").write_text("<!doctype html><div id=root></div>\n")


def source_zip_size(root: Path) -> int:
    """Size of a zip of the sources (what a per-version source snapshot zip would cost)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and rel.parts[0] not in ("dist", "node_modules") and not rel.parts[0].startswith(".git"):
                zf.write(path, str(rel))
    return len(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--versions", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
        base = Path(tmp)
        ws = base / "ws"
        ws.mkdir()
        editable = make_project(ws, rng)
        src_only = ProjectRepo.open_or_init(base / "sources.git")
        daemon_like = ProjectRepo.open_or_init(base / "daemon.git")
        zip_total = 0
        ids: list[str] = []
        snap_s: list[float] = []
        prune_s: list[float] = []
        for n in range(args.versions):
            if n:
                small_edit(ws, rng, editable, n)
            vid = f"V{n:03d}"
            parent = ids[-1] if ids else None
            zip_total += source_zip_size(ws)
            src_only.snapshot(ws, vid, parent, f"edit {n}", exclude_dirs=["dist"])
            fake_build(ws, rng)
            t = time.perf_counter()
            daemon_like.snapshot(ws, vid, parent, f"edit {n}", exclude_dirs=["dist"])
            daemon_like.snapshot_dist(ws, vid, "dist")
            snap_s.append(time.perf_counter() - t)
            ids.append(vid)
            daemon_like.slide_dist_window(ids[-3:])
            t = time.perf_counter()
            daemon_like.prune()
            prune_s.append(time.perf_counter() - t)
        src_only.prune()
        files = len(src_only.files(ids[-1]))
        src_size, daemon_size = src_only.size_bytes(), daemon_like.size_bytes()
        print(f"project: {files} source files, {args.versions} versions of 1-2 small edits each")
        print(f"sum of {args.versions} source zips: {zip_total} bytes")
        print(
            f"source history repo (pruned): {src_size} bytes = {src_size / zip_total:.1%} of the zips (target <= 10%)"
        )
        print(f"daemon repo (sources + latest-3 dist window, pruned each version): {daemon_size} bytes")
        print(f"snapshot + snapshot_dist per version: median {statistics.median(snap_s) * 1000:.1f} ms")
        print(
            f"slide + prune per version: median {statistics.median(prune_s) * 1000:.1f} ms, "
            f"max {max(prune_s) * 1000:.1f} ms"
        )

        checkout_s, copy_s = [], []
        reference = base / "reference"
        daemon_like.checkout(ids[-1], reference, dist=True)
        for i in range(args.repeats):
            t = time.perf_counter()
            daemon_like.checkout(ids[-1], base / f"co{i}", dist=True)
            checkout_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            shutil.copytree(reference, base / f"cp{i}")
            copy_s.append(time.perf_counter() - t)
        co, cp = statistics.median(checkout_s), statistics.median(copy_s)
        tree_bytes = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
        print(
            f"checkout(dist=True) of {tree_bytes} bytes: median {co * 1000:.1f} ms; copytree: {cp * 1000:.1f} ms; "
            f"ratio {co / cp:.1f}x"
        )
        if os.environ.get("HISTORY_BENCH_KEEP"):
            shutil.copytree(base / "daemon.git", os.environ["HISTORY_BENCH_KEEP"])


if __name__ == "__main__":
    main()
