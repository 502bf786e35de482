"""The background-work seam and the bounds of the state it owns: the job registry (names, order, stop once), the
build queue's timing maps, the checks registry, the fleet's per-project guards, the alert webhook posts."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from daemon.core.background import Job, Jobs, Owned
from daemon.core.events import Events
from daemon.fleet.guards import ProjectGuards
from daemon.fleet.leased import LeasedFleet
from daemon.intake import queue
from daemon.intake.queue import BuildQueue
from daemon.ops import alerts
from daemon.ops.metrics import Metrics
from daemon.steps import checks
from tests.support import wait_until


def test_jobs_start_in_order_stop_in_reverse_each_once_and_a_failing_stop_stops_no_other() -> None:
    seen: list[str] = []

    def job(name: str, *, fail: bool = False) -> Job:
        def stop(grace: float) -> None:
            seen.append(f"stop {name} {grace:g}")
            if fail:
                raise RuntimeError("boom")

        return Job(name, "own thread", "test", "test", start=lambda: seen.append(f"start {name}"), stop=stop)

    jobs = Jobs()
    for j in (job("a"), job("b", fail=True), job("c")):
        jobs.declare(j)
    with pytest.raises(ValueError, match="already declared"):
        jobs.declare(job("a"))
    jobs.start()
    jobs.start()
    jobs.stop(3)
    jobs.stop(3)
    assert seen == ["start a", "start b", "start c", "stop c 3", "stop b 3", "stop a 3"]
    assert [d["name"] for d in jobs.describe()] == ["a", "b", "c"]


def test_owned_state_is_per_owner_and_has_a_fixed_number_of_slots() -> None:
    one, two = Owned(slots=2), Owned(slots=2)
    assert one.get("x", list) is one.get("x", list)
    assert one.get("x", list) is not two.get("x", list)
    one.get("y", dict)
    with pytest.raises(RuntimeError, match="no slot left"):
        one.get("z", set)


def test_the_queue_forgets_each_build_when_it_ends(tmp_path: Path) -> None:
    ran: list[str] = []

    def run(vid: str) -> None:
        ran.append(vid)
        if vid.endswith("3"):
            raise RuntimeError("a build that crashes the task still ends")

    q = BuildQueue(tmp_path / "queue.db", run, immediate=True)
    for i in range(40):
        with contextlib.suppress(RuntimeError):
            q.enqueue(f"v{i}")
    assert len(ran) == 40
    assert q.enqueued_at == {} and q.started_at == {}


def test_the_queue_tracks_at_most_max_tracked_builds_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue, "MAX_TRACKED", 8, raising=False)
    q = BuildQueue(tmp_path / "queue.db", lambda _vid: None)  # no worker: every build stays queued
    for i in range(8 + 5):
        q.enqueue(f"v{i}")
    assert len(q.enqueued_at) == 8
    assert list(q.enqueued_at) == [f"v{i}" for i in range(5, 13)]  # the newest are kept
    assert q.pending() == 13  # the queue itself loses nothing


def _session(block: threading.Event) -> checks.Session:
    plan = checks.Plan(typecheck=["tsc"], lint=None)

    def run_code(_argv: list[str], _on_line: object) -> object:
        block.wait(10)
        raise RuntimeError("no sandbox here")

    return checks.Session(plan, run_code, Path("/nonexistent"), Path("/nonexistent"))  # type: ignore[arg-type]


def test_the_checks_registry_owns_running_sessions_and_prunes_ended_recordings() -> None:
    pending = checks.Pending()
    block = threading.Event()
    pending.begin("v1", _session(block).start())
    assert pending.running("v1") and pending.alive()
    block.set()
    session = pending.take("v1")
    assert session is not None and pending.take("v1") is None and not pending.running("v1")
    session.wait()
    for i in range(20):  # each project's recording ends at once
        pending.add(("u", f"p{i}"), lambda: None)
        pending.drain(5)
    pending.add(("u", "last"), lambda: None)
    assert pending.size() == (0, 1)
    assert pending.drain(5) and not pending.alive()


def _leased_fleet() -> LeasedFleet:
    """A fleet droplet as far as its guards ask: a keeper that notes activity, no stores, no deployer."""
    keeper = SimpleNamespace(touch=lambda u, p: None, is_idle=None)
    return LeasedFleet(keeper, SimpleNamespace(), SimpleNamespace(), Events(),  # type: ignore[arg-type]
                       preview_domain="localhost", previews_port=0)


def test_fleet_guards_keep_only_projects_in_use_and_are_per_fleet() -> None:
    fleet, other = _leased_fleet(), _leased_fleet()
    g = fleet.guards
    assert g is fleet.guards and g is not other.guards
    for i in range(50):
        with g.catching_up(("u", f"p{i}")):
            assert g.size() == (1, 0)
    fleet.hold("u", "p")
    fleet.hold("u", "p")
    assert g.size() == (0, 1) and not fleet.is_idle("u", "p")
    fleet.unhold("u", "p")
    fleet.unhold("u", "p")
    assert g.size() == (0, 0)


def test_one_admission_per_project_at_a_time() -> None:
    g = ProjectGuards()
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with g.catching_up(("u", "p")):
            inside.set()
            release.wait(10)
            order.append("first")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(10)

    def second_one() -> None:
        with g.catching_up(("u", "p")):
            order.append("second")

    second = threading.Thread(target=second_one)
    second.start()
    with g.catching_up(("u", "other")):  # another project is not held up
        order.append("other")
    release.set()
    t.join(10)
    second.join(10)
    assert order == ["other", "first", "second"]
    assert g.size() == (0, 0)


def _alert_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("alert-webhook") and t.is_alive()]


def test_a_burst_of_alert_posts_runs_on_a_bounded_pool_and_stops_with_its_owner() -> None:
    # A listener that never accepts: each post connects (the kernel's backlog) and waits for an answer.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    cfg = SimpleNamespace(alerts=SimpleNamespace(webhook_url=url))
    owner = alerts.Alerts(cfg, Path("."), Metrics())  # type: ignore[arg-type]
    before = len(_alert_threads())
    try:
        for i in range(20):
            owner.post({"alert": f"a{i}"})
        wait_until(lambda: len(_alert_threads()) > before, 10, what="a webhook post running")
        assert len(_alert_threads()) - before <= alerts.WEBHOOK_THREADS
    finally:
        listener.close()  # the posts waiting fail at once
    owner.stop()
    assert not owner.alive()


def test_daemonctl_status_lists_the_jobs() -> None:
    from daemon.cli import daemonctl_ops

    text = daemonctl_ops.render_status({"daemon": "up", "url": "http://x", "queue": {}, "versions": {},
                                        "jobs": [{"name": "build-worker", "alive": True},
                                                 {"name": "checks", "alive": False}]})
    assert "jobs       build-worker up  checks idle" in text
