"""The pipeline as a runner of steps, with fake steps on a real runtime: the order, the lease checked between steps,
a failing step ending the build once with its reason, and what a failure takes back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from daemon.core.db import ProjectVersion
from daemon.intake.submit import BuildRequest, submit_new
from daemon.project.failures import BuildFailed
from daemon.steps import pipeline
from daemon.steps.context import BuildContext, Step, VersionWriter
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.test_pipeline import InlineQueue


class FakeStep:
    """Notes that it ran; optionally sleeps, raises, or does not apply."""

    def __init__(self, name: str, ran: list[str], *, timing: str | None = None, fail: BaseException | None = None,
                 applies: bool = True, sleep: float = 0.0) -> None:
        self.name, self.timing, self.ran = name, timing, ran
        self.fail, self._applies, self.sleep = fail, applies, sleep

    def applies(self, ctx: BuildContext) -> bool:
        return self._applies

    def run(self, ctx: BuildContext) -> None:
        self.ran.append(self.name)
        time.sleep(self.sleep)
        if self.fail is not None:
            raise self.fail


def _build(bench: Bench, steps: Sequence[Step], project: str = "p1") -> ProjectVersion:
    q = InlineQueue()
    v = submit_new(bench.rt, q, BuildRequest("u1", project, "x"))  # type: ignore[arg-type]
    pipeline.Pipeline(bench.rt, steps=lambda kind: steps).run(q.ids[0])
    return ProjectVersion.get_by_id(v.version_id)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every write of the version row through its one writer, in order."""
    seen: list[dict[str, Any]] = []
    original = VersionWriter.record

    def record(self: VersionWriter, **fields: Any) -> ProjectVersion:
        seen.append(fields)
        return original(self, **fields)

    monkeypatch.setattr(VersionWriter, "record", record)
    return seen


def test_steps_run_in_order_and_those_that_do_not_apply_are_skipped(bench: Bench,
                                                                     writes: list[dict[str, Any]]) -> None:
    ran: list[str] = []
    v = _build(bench, [FakeStep("a", ran), FakeStep("b", ran, applies=False), FakeStep("c", ran),
                       FakeStep("d", ran)])
    assert ran == ["a", "c", "d"]
    assert v.status == "building"  # no finish step: nothing but the runner wrote the row
    assert writes == [{"status": "building"}]


def test_a_failing_step_stops_the_run_and_the_version_fails_once_with_its_reason(
        bench: Bench, writes: list[dict[str, Any]]) -> None:
    ran: list[str] = []
    v = _build(bench, [FakeStep("a", ran, timing="bundle", sleep=0.03),
                       FakeStep("b", ran, fail=BuildFailed("install_failed", "pnpm install exited 1")),
                       FakeStep("c", ran)])
    assert ran == ["a", "b"]
    assert (v.status, v.failure_reason, v.failure_message) == ("failed", "install_failed", "pnpm install exited 1")
    failed = [w for w in writes if w.get("status") == "failed"]
    assert len(failed) == 1 and len(writes) == 2  # building, then failed: recorded once
    assert failed[0]["add_timings"]["bundle"] >= 20  # a step that ended counts under its timing key
    assert failed[0]["install_duration_ms"] is None  # the failed step's own time is not counted
    assert "failed: install_failed: pnpm install exited 1" in bench.rt.layout.log_path(v.version_id).read_text()


def test_an_unexpected_error_fails_the_version_as_build_failed(bench: Bench) -> None:
    ran: list[str] = []
    v = _build(bench, [FakeStep("a", ran, fail=KeyError("boom")), FakeStep("b", ran)])
    assert ran == ["a"]
    assert (v.status, v.failure_reason) == ("failed", "build_failed")
    assert "internal error: KeyError" in (v.failure_message or "")


def test_the_lease_is_checked_between_steps(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(bench.rt.fleet, "lapsed", lambda user, project: "lease lost" if ran else None)
    v = _build(bench, [FakeStep("a", ran), FakeStep("b", ran)])
    assert ran == ["a"]  # the lease lapsed while `a` ran: `b` never starts
    assert (v.status, v.failure_reason, v.failure_message) == ("failed", "interrupted", "lease lost")


def test_a_failure_takes_back_the_undo_and_every_exit_clears_the_workspace_scratch(bench: Bench) -> None:
    events: list[str] = []

    class Registers:
        name, timing = "registers", None

        def applies(self, ctx: BuildContext) -> bool:
            return True

        def run(self, ctx: BuildContext) -> None:
            ctx.undo.callback(events.append, "undo")
            ctx.workspace_scratch.callback(events.append, "scratch")

    ran: list[str] = []
    _build(bench, [Registers(), FakeStep("ok", ran)])
    assert events == ["scratch"]  # success: the undo is never run
    events.clear()
    _build(bench, [Registers(), FakeStep("bad", ran, fail=BuildFailed("deploy_failed", "no"))], project="p2")
    assert events == ["undo", "scratch"]


def test_the_step_lists() -> None:
    names = [s.name for s in pipeline.steps_for("new")]
    assert names == ["prepare", "generate", "warm-hold", "write", "reuse install", "take back node_modules",
                     "install", "audit", "snapshot", "bundle", "verdict", "export", "warm-keep", "artifact", "deploy",
                     "finish"]
    assert [s.name for s in pipeline.steps_for("rollback")] == [n if n != "generate" else "restore" for n in names]
    assert {s.timing for s in pipeline.steps_for("new")} == {None, "generate", "install", "bundle", "deploy"}
