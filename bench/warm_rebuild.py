"""One-file rebuild, request -> live, with the project's warm bundler vs the cold path, against a first build.

Two real daemons on their own data dirs (warm: `[build] warm_projects = 3`; cold: `warm_projects = 0`), the same
template app (React 19 + Vite 6 + Tailwind 4, build script `tsc -b && vite build`), the shared warm pnpm store.
Each builds the project once (the first build, baseline), then the rebuilds alternate between the two daemons
(interleaved, so both see the same machine): each a one-line change of the headline (`src/content.ts` only).

Prints, as ratios against the first build measured in this same run:
  warm rebuild p50 (s) and / first build      (goal <= 1.0 s and <= 0.15)
  cold rebuild p50 (s) and / first build      (before: 0.47-0.56)
  the bundle step alone: bundle_warm p50 / bundle_cold p50
  RSS of one warm bundler (its whole process tree, after a rebuild), and how many fit in 4 GB beside one build
Run: .venv/bin/python bench/warm_rebuild.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import TEST_SECRET, wait_until  # noqa: E402
from tests.support.live import LiveDaemon  # noqa: E402

PROMPT = "A bakery landing page with a menu, opening hours and a contact form"
MARK = "@@previewd-warm"
BUILD_RESERVE_MB = 1024  # one build at [limits] memory_mb beside the warm set


class BenchDaemon(LiveDaemon):
    """A LiveDaemon that gives a loaded machine three minutes to start."""

    def start(self) -> BenchDaemon:
        env = {**os.environ, "PREVIEWD_HMAC_SECRET": TEST_SECRET, "PREVIEWD_CONFIG": str(self.config)}
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve"], env=env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def healthy() -> bool:
            try:
                return bool(self.http.get(self.base + "/healthz", timeout=2).status_code == 200)
            except Exception:
                return False

        wait_until(healthy, 180, interval=0.2, what="the daemon answering /healthz")
        return self


def bundler_rss() -> list[int]:
    """RSS (bytes) of each warm bundler tree on the machine (its bwrap, its init, node)."""
    roots = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = p.info.get("cmdline") or ()
        if any(MARK in a for a in cmd) and not any(MARK in a for a in (_cmd(p.info["ppid"]))):
            roots.append(p)
    out = []
    for r in roots:
        try:
            out.append(sum(q.memory_info().rss for q in [r, *r.children(recursive=True)]))
        except psutil.Error:
            continue
    return out


def _cmd(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def timed(d: LiveDaemon, path: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.monotonic()
    r = d.post(path, body)
    wall = time.monotonic() - t0
    out = r.json()
    if not out.get("success"):
        raise SystemExit(f"{path} failed: {out}")
    v: dict[str, Any] = d.get(f"/versions/{out['versionId']}").json()
    return wall, v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="warm-bench-") as tmp:
        for sub in ("w", "c"):
            (Path(tmp) / sub).mkdir()
        warm = BenchDaemon(Path(tmp) / "w", "[build]\nwarm_projects = 3\n")
        cold = BenchDaemon(Path(tmp) / "c", "[build]\nwarm_projects = 0\n")
        warm.start()
        cold.start()
        try:
            first: list[float] = []
            for d in (warm, cold):
                wall, _v = timed(d, "/build-preview-for-new-project",
                                 {"userId": "bench", "projectId": "site", "prompt": PROMPT})
                first.append(wall)
            time.sleep(5)  # the warm bundler fills its cache (as a user reads the first preview)
            w_wall: list[float] = []
            c_wall: list[float] = []
            w_bundle: list[int] = []
            c_bundle: list[int] = []
            paths: list[str] = []
            for i in range(args.runs):
                body = {"userId": "bench", "projectId": "site", "prompt": f"Change the headline to Fresh bread {i}"}
                wall, v = timed(warm, "/rebuild-preview", body)
                w_wall.append(wall)
                t = v.get("timings") or {}
                paths.append("warm" if "bundle_warm" in t else "cold")
                w_bundle.append(int(t.get("bundle_warm", t.get("bundle_cold", 0))))
                wall, v = timed(cold, "/rebuild-preview", body)
                c_wall.append(wall)
                c_bundle.append(int((v.get("timings") or {}).get("bundle_cold", 0)))
            rss = bundler_rss()
        finally:
            warm.stop()
            cold.stop()
    f = statistics.median(first)
    wp, cp = statistics.median(w_wall), statistics.median(c_wall)
    print(f"first build (request -> live), median of 2: {f:.2f} s")
    print(f"warm rebuild p50: {wp:.2f} s  ratio to first build {wp / f:.3f}  (paths: {', '.join(paths)})")
    print(f"cold rebuild p50: {cp:.2f} s  ratio to first build {cp / f:.3f}")
    print(f"warm / cold rebuild: {wp / cp:.3f}")
    bw, bc = statistics.median(w_bundle), statistics.median(c_bundle)
    print(f"bundle step p50: warm {bw} ms, cold {bc} ms, ratio {bw / max(bc, 1):.3f}")
    if rss:
        mb = max(rss) / 2**20
        fit = int((4096 - BUILD_RESERVE_MB - 512) // mb)
        print(f"RSS per warm bundler: {mb:.0f} MiB; at 4 GB (1 GiB for a build, 512 MiB for the daemon): {fit}")


if __name__ == "__main__":
    main()
