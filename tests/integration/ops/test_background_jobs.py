"""A daemon's background jobs: each declared once with where it runs and how it stops, listed by `/status`, and
none left running once the daemon stopped."""

from __future__ import annotations

import threading
from pathlib import Path

from daemon.cli.serve import Daemon
from tests.support import make_config

JOBS = {"sync": "own thread", "after-live": "bounded pool", "alert-webhooks": "bounded pool",
        "checks": "own thread", "build-worker": "build worker", "scheduler": "scheduler",
        "warm-bundlers": "own thread"}


def _job_threads(before: set[threading.Thread]) -> list[str]:
    """Threads started since `before` and still running (Huey's run as Worker-1 and Scheduler)."""
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def test_a_stopped_daemon_leaves_no_job_thread_alive(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    d = Daemon(make_config(tmp_path, "[render]\nenabled = false\n"))
    d.start()
    try:
        assert {j.name: j.runs_in for j in d.rt.jobs} == JOBS
        alive = set(d.rt.jobs.alive())
        assert {"sync", "build-worker", "scheduler"} <= alive
        report = d.ops.status.report()
        listed = {j["name"]: j for j in report["jobs"]}
        assert set(listed) == set(JOBS) and listed["build-worker"]["alive"]
        assert all(j["trigger"] and j["stops"] for j in report["jobs"])
        assert "nightly_cleanup" in listed["scheduler"]["trigger"]
    finally:
        d.stop(grace_s=5)
    assert d.rt.jobs.alive() == []
    assert _job_threads(before) == []


def test_a_never_started_daemon_closes_without_starting_a_job(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    d = Daemon(make_config(tmp_path, "[render]\nenabled = false\n"))
    d.close()
    assert d.rt.jobs.alive() == [] and _job_threads(before) == []
