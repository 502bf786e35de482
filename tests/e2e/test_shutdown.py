"""Graceful shutdown: SIGTERM lets a running build finish within the grace period, else fails it as interrupted;
the process exits 0 and leaves nothing running; a second daemon on the same data dir is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import TEST_SECRET, wait_until
from tests.support.live import LiveDaemon

# The build sleeps for the seconds the prompt ends with, then writes its page.
SLEEPER = '''
secs = req["prompt"].split()[-1]
build = f"sleep {secs} && mkdir -p dist && echo done > dist/index.html"
files = {"README.md": "x"}
'''


def _daemon(tmp: Path, grace: float) -> LiveDaemon:
    d = LiveDaemon(tmp, generator_config(write_generator(tmp, SLEEPER), "[render]\nenabled = false\n"))
    d.config.write_text(d.config.read_text().replace("[server]\n", f"[server]\nshutdown_grace_s = {grace}\n", 1))
    return d


# A fraction unique to this test run, so `_sleepers` never counts a `sleep` of another process on the machine.
_TAG = f"{os.getpid() % 100000:05d}"


def _start_build(d: LiveDaemon, seconds: int) -> str:
    r = d.post("/build-preview-for-new-project",
               {"userId": "u", "projectId": "slow", "prompt": f"sleep {seconds}.{_TAG}"}, wait="false")
    vid = r.json()["versionId"]
    d.wait_status(vid, ("building",), timeout=60)
    wait_until(_sleepers, 30, interval=0.1, what="the build's sleep starting")
    return str(vid)


def _sleepers() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[:1] == ["sleep"]
            and p.info["cmdline"][1:2] in ([f"45.{_TAG}"], [f"3.{_TAG}"])]


def test_build_past_the_grace_period_is_interrupted_and_exit_is_clean(tmp_path: Path) -> None:
    d = _daemon(tmp_path, 1.0)
    d.start()
    vid = _start_build(d, 45)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(60) == 0
    d.proc = None
    assert not _sleepers(), "the build's process tree outlived the daemon"
    d.start()
    v = d.get(f"/versions/{vid}").json()
    assert v["status"] == "failed" and v["failureReason"] == "interrupted", v
    d.stop()


def test_build_within_the_grace_period_finishes(tmp_path: Path) -> None:
    d = _daemon(tmp_path, 60.0)
    d.start()
    vid = _start_build(d, 3)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(60) == 0
    d.proc = None
    d.start()
    assert d.get(f"/versions/{vid}").json()["status"] == "deployed"
    d.stop()


def test_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    d = _daemon(tmp_path, 300.0)
    d.start()
    _start_build(d, 45)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(20)
    assert time.monotonic() - t0 < 15
    d.proc = None
    d.start()  # the next start cleans up: the build is failed as interrupted, never stuck
    v = d.get("/versions", params={"userId": "u", "projectId": "slow"}).json()["versions"][0]
    assert v["status"] == "failed" and v["failureReason"] == "interrupted"
    d.stop()


def test_second_daemon_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    d = _daemon(tmp_path, 5.0)
    d.start()
    try:
        env = {**os.environ, "PREVIEWD_HMAC_SECRET": TEST_SECRET, "PREVIEWD_CONFIG": str(d.config)}
        out = subprocess.run([sys.executable, "-m", "daemon.cli", "serve"], env=env, capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
        assert out.returncode == 2
        assert "another previewd (pid" in out.stderr and "is running on data dir" in out.stderr
        assert d.get("/healthz").status_code == 200
    finally:
        d.stop()
