"""Trace one build request through a real daemon: the project modules it touches, in the order it first touches them.

Runs `previewd serve` on a temp data dir under a profiler hook that notes each call into `daemon`, `sandbox` or
`sync`, sends one signed first-build request, waits for the version to settle (checks included), stops the daemon
and prints the modules entered after the request was sent. Used for the "trace of one build request" in issue 25.
Run: .venv/bin/python scripts/trace_build.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import TEST_SECRET, free_port, write_config  # noqa: E402
from tests.support.live import LiveDaemon  # noqa: E402

# Run inside the daemon: note (time, module) whenever a call crosses into another project module.
BOOT = r"""
import atexit, json, os, sys, threading, time
seen = []
last = {}
def hook(frame, event, arg):
    if event != "call":
        return
    mod = frame.f_globals.get("__name__", "")
    if not mod.startswith(("daemon", "sandbox", "sync")):
        return
    tid = threading.get_ident()
    if last.get(tid) != mod:
        last[tid] = mod
        seen.append((time.time(), mod))
def dump():
    with open(os.environ["TRACE_OUT"], "w") as fh:
        json.dump(seen, fh)
atexit.register(dump)
sys.setprofile(hook)
threading.setprofile(hook)
sys.argv = ["previewd", "serve"]
from daemon.cli.previewd import main
sys.exit(main())
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path, help="also write the ordered module list here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trace-build-") as tmp_s:
        tmp = Path(tmp_s)
        out = tmp / "trace.json"
        d = LiveDaemon(tmp)
        d.port = free_port()
        d.config = write_config(tmp, port=d.port)
        d.base = f"http://127.0.0.1:{d.port}"
        env = {**os.environ, "PREVIEWD_HMAC_SECRET": TEST_SECRET, "PREVIEWD_CONFIG": str(d.config),
               "TRACE_OUT": str(out)}
        with open(d.log, "ab") as fh:
            d.proc = subprocess.Popen([sys.executable, "-c", BOOT], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=REPO)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if d.http.get(d.base + "/healthz", timeout=1).status_code == 200:
                    break
            except Exception:
                time.sleep(0.2)
        sent = time.time()
        r = d.post("/build-preview-for-new-project",
                   {"userId": "alice", "projectId": "trace", "prompt": "A bakery landing page"})
        body = r.json()
        vid = body.get("versionId")
        if vid:
            d.wait_status(vid, ("deployed", "failed"), timeout=600)
            time.sleep(3)  # checks and after-live work settle
        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(60)
        seen = json.loads(out.read_text())
        order: list[str] = []
        for t, mod in seen:
            if t >= sent and mod not in order:
                order.append(mod)
        print(f"build answered {r.status_code} success={body.get('success')}; {len(order)} modules after the request:")
        for i, mod in enumerate(order, 1):
            print(f"{i:3d} {mod}")
        if args.json:
            args.json.write_text(json.dumps(order, indent=1))


if __name__ == "__main__":
    main()
