"""Rollback fast path (artifact redeployed) vs a rebuild of the same version (slow path), same daemon, same run.

Prints the fast path's p50 over N rollbacks (target <= 300 ms), the slow path's time (the artifact removed, so the
version's sources are rebuilt with its lockfile), and the ratio (target >= 20x).
Run: .venv/bin/python bench/rollback.py [--rollbacks N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.cli.client import SheenAuth  # noqa: E402

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rollbacks", type=int, default=15)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="previewd-rollback-"))
    port = free_port()
    cfg = root / "previewd.toml"
    cfg.write_text(f'[server]\nport = {port}\n[paths]\ndata_dir = "{root / "data"}"\n'
                   f'pnpm_store = "/tmp/previewd-test-pnpm-store"\n[build]\naudit = "off"\n[render]\nenabled = false\n'
                   "[rate_limits]\nrebuilds_per_project_per_hour = 1000\n")
    env = {**os.environ, "PREVIEWD_CONFIG": str(cfg), "PREVIEWD_HMAC_SECRET": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900, trust_env=False,
                        auth=SheenAuth(SECRET))  # every request v2-signed

    def post(path: str, payload: dict[str, str]) -> tuple[float, dict[str, object]]:
        body = json.dumps(payload).encode()
        t0 = time.perf_counter()
        r = http.post(path, content=body, headers={"content-type": "application/json"})
        elapsed = time.perf_counter() - t0
        data = r.json()
        if not data.get("success"):
            raise SystemExit(f"{path} failed: {data}")
        return elapsed, data

    try:
        for _ in range(300):
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        ref = {"userId": "bench", "projectId": "rb"}
        _, v1 = post("/build-preview-for-new-project", {**ref, "prompt": "A yoga studio with a schedule"})
        _, v2 = post("/rebuild-preview", {**ref, "prompt": "Change the headline to Breathe"})
        fast: list[float] = []
        for i in range(args.rollbacks):
            target = v1 if i % 2 == 0 else v2
            t, _ = post(f"/rollback/{target['versionId']}", ref)
            fast.append(t)
        (root / "data" / "objects" / "bench" / "rb" / "snapshots" / f"{v1['versionId']}.zip").unlink()
        slow, _ = post(f"/rollback/{v1['versionId']}", ref)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    p50 = statistics.median(fast)
    print(f"rollback fast path: p50 {p50 * 1000:.0f} ms, max {max(fast) * 1000:.0f} ms over {len(fast)}  "
          "(target p50 <= 300 ms)")
    print(f"rebuild of the same version (slow path): {slow:.2f} s  ->  fast path is {slow / p50:.0f}x faster  "
          "(target >= 20x)")


if __name__ == "__main__":
    main()
