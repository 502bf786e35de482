"""The scheduler registers the jobs it is handed (built by the composition root), each at its own time."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from daemon.ops.scheduler import Scheduler


def _scheduler(*, sweep_scheduled: bool, calls: list[str], poll: Any = None) -> Scheduler:
    cleanup = SimpleNamespace(cfg=SimpleNamespace(retention=SimpleNamespace(nightly_at="03:30")),
                              nightly=lambda: calls.append("cleanup"))
    alerts = SimpleNamespace(run=lambda: calls.append("alerts"))
    sweep = SimpleNamespace(scheduled=sweep_scheduled, interval_s=7.0, run=lambda: calls.append("sweep"))
    return Scheduler(poll_deployments=poll or (lambda: calls.append("poll")), poll_interval_s=30.0,
                     cleanup=cleanup, alerts=alerts, sweep=sweep)  # type: ignore[arg-type]


def _jobs(s: Scheduler) -> dict[str, Any]:
    return {job.id: job for job in s.aps.get_jobs()}


def test_every_handed_job_is_registered_at_its_time_and_runs_what_it_was_given() -> None:
    calls: list[str] = []
    s = _scheduler(sweep_scheduled=True, calls=calls)
    jobs = _jobs(s)
    assert set(jobs) == {"prune_rate_events", "poll_deployments", "nightly_cleanup", "alerts", "retention_sweep"}
    assert str(jobs["nightly_cleanup"].trigger) == "cron[hour='3', minute='30']"
    assert jobs["poll_deployments"].trigger.interval.total_seconds() == 5.0  # at most 5 s, whatever the config
    assert jobs["retention_sweep"].trigger.interval.total_seconds() == 7.0
    assert jobs["alerts"].trigger.interval.total_seconds() == 60.0
    for name in ("poll_deployments", "nightly_cleanup", "alerts", "retention_sweep"):
        jobs[name].func()
    assert calls == ["poll", "cleanup", "alerts", "sweep"]
    assert all(name in " ".join(s.job_names()) for name in jobs)


def test_the_sweep_is_left_out_where_it_has_nothing_to_do_and_a_failing_poll_is_logged(caplog: Any) -> None:
    def broken() -> None:
        raise OSError("platform away")

    s = _scheduler(sweep_scheduled=False, calls=[], poll=broken)
    assert "retention_sweep" not in _jobs(s)
    _jobs(s)["poll_deployments"].func()  # never raises into APScheduler
    assert "scheduled job poll_deployments failed" in caplog.text
