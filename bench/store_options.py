"""The pnpm store designs for tenant isolation, measured on the template project (the daemon's install flags):

  hardlink   one shared store, packages hard-linked into node_modules (the daemon's choice: node_modules is then
             mounted read-only into every step that runs generated code, so no write reaches the store's inodes)
  copy       one shared store, packages copied into each project (package-import-method=copy)
  clone      one shared store, reflinks (package-import-method=clone; needs btrfs/xfs, fails on ext4)
  per-user   a store per user: every new user installs into an empty store

Prints the median warm install (store already holding every package, a new project dir) per design, as a ratio
against `hardlink`, and the extra disk each project costs (blocks not shared with the store).
Run: .venv/bin/python bench/store_options.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.generators import GenerationRequest, make_generator  # noqa: E402
from daemon.project import toolchain  # noqa: E402

PROMPT = "A bakery landing page with a menu, opening hours and a contact form"


def project_files() -> dict[str, str]:
    files = dict(make_generator("template").generate(GenerationRequest(prompt=PROMPT), lambda _l: None)
                 .contract.files)
    files["pnpm-workspace.yaml"] = toolchain.workspace_yaml(["esbuild", "@tailwindcss/oxide"])
    return files


def install(files: dict[str, str], work: Path, store: Path, cache: Path, method: str | None) -> float | None:
    """Seconds for the daemon's `pnpm install` in a fresh dir; None when pnpm refuses the import method."""
    for rel, text in files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    tc = toolchain.resolve()
    argv = toolchain.install_argv(tc, store)
    if method:
        argv.append(f"--config.package-import-method={method}")
    env = {"PATH": tc.path_env, "HOME": str(work.parent), "XDG_CACHE_HOME": str(cache), "CI": "true"}
    t0 = time.perf_counter()
    res = subprocess.run(argv, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0 if res.returncode == 0 else None


def private_bytes(root: Path) -> int:
    """Blocks under root held by files with no other link (what a project adds on top of the store)."""
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_nlink == 1:
                total += st.st_blocks * 512
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    files = project_files()
    root = Path(tempfile.mkdtemp(prefix="previewd-store-bench-"))
    try:
        store, cache = root / "store", root / "cache"
        if install(files, root / "warmup" / "app", store, cache, None) is None:
            raise SystemExit("the warm-up install failed (registry unreachable?)")
        times: dict[str, list[float]] = {"hardlink": [], "copy": [], "clone": [], "per-user": []}
        disk: dict[str, int] = {}
        failed: set[str] = set()
        for i in range(args.runs):  # interleaved, so machine noise hits every design alike
            for method in ("hardlink", "copy", "clone"):
                work = root / f"{method}-{i}" / "app"
                t = install(files, work, store, cache, method)
                if t is None:
                    failed.add(method)
                    continue
                times[method].append(t)
                disk[method] = private_bytes(work / "node_modules")
            # per-user: a new user's empty store (the registry metadata cache stays warm, as on a droplet)
            t = install(files, root / f"user-{i}" / "app", root / f"user-store-{i}", cache, None)
            if t is not None:
                times["per-user"].append(t)
                disk["per-user"] = private_bytes(root / f"user-{i}" / "app" / "node_modules") + \
                    sum(os.lstat(os.path.join(d, n)).st_blocks * 512
                        for d, _s, ns in os.walk(root / f"user-store-{i}") for n in ns)
        base = statistics.median(times["hardlink"])
        for name, ts in times.items():
            if name in failed or not ts:
                print(f"{name:9}: not possible on this file system ({'pnpm refused the import method'})")
                continue
            med = statistics.median(ts)
            print(f"{name:9}: warm install {med:5.2f}s  ratio {med / base:5.2f}x hardlink  "
                  f"disk per project {disk[name] / 2**20:6.1f} MiB  (median of {len(ts)})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
