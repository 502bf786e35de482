"""Benchmark: the daemon's resident memory idle and after 200 builds (target: growth <= 10 MB).

Usage: .venv/bin/python bench/memory.py [--builds 200] [--projects 10] [--warmup 20]

Starts `previewd serve` on a temp data dir with the drill command generator (a tiny dependency-free project
whose build copies one file), the local deployer, the render check off and generous rate caps; measures RSS
(and USS) idle, after `--warmup` builds, and after `--builds` builds spread over `--projects` projects (every
build a real rebuild: generate, write, install-or-skip, git snapshot, pnpm build, zip, deploy, dist window,
recovery pack, sync). Prints the three figures and the growth; exits 1 when a build fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.drills.support import Drill, drill_config  # noqa: E402

GENEROUS = """
[rate_limits]
per_ip_per_hour = 1000000
new_projects_per_user_per_hour = 1000000
rebuilds_per_project_per_hour = 1000000
"""


def mem(pid: int) -> tuple[float, float]:
    """(RSS, USS) in MiB."""
    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def settle(pid: int, seconds: float = 3.0) -> tuple[float, float]:
    """Memory after the background loops have had a moment (the last build's after-deploy work included)."""
    time.sleep(seconds)
    return mem(pid)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--builds", type=int, default=200)
    ap.add_argument("--projects", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="previewd-memory-"))
    d = Drill(tmp, drill_config(tmp, GENEROUS, sync_interval_s=2.0)).start()
    failed = 0
    try:
        idle = settle(d.pid)
        warm = idle
        t0 = time.monotonic()
        for i in range(args.builds):
            proj = f"p{i % args.projects}"
            if i < args.projects:
                r = d.build("mem", proj, f"first build of {proj}")
            else:
                r = d.rebuild("mem", proj, f"build {i} of {proj}")
            failed += r.get("success") is not True
            if i + 1 == args.warmup:
                warm = settle(d.pid)
        elapsed = time.monotonic() - t0
        after = settle(d.pid)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"daemon memory over {args.builds} builds ({args.projects} projects, {elapsed:.0f} s, "
          f"{elapsed / args.builds:.2f} s/build, {failed} failed)")
    print(f"  idle                 RSS {idle[0]:7.1f} MiB   USS {idle[1]:7.1f} MiB")
    print(f"  after {args.warmup:3d} builds     RSS {warm[0]:7.1f} MiB   USS {warm[1]:7.1f} MiB")
    print(f"  after {args.builds:3d} builds     RSS {after[0]:7.1f} MiB   USS {after[1]:7.1f} MiB")
    growth = after[0] - idle[0]
    print(f"  growth idle -> {args.builds}: {growth:+.1f} MiB RSS (target <= 10)   "
          f"after warm-up -> {args.builds}: {after[0] - warm[0]:+.1f} MiB RSS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
