"""The audit runs on a thread beside the build; whatever step fails, that thread ends before the build does (its
scratch directory is removed at the build's end, under an audit still reading it otherwise)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from daemon.core.db import ProjectVersion
from daemon.intake.submit import BuildRequest, submit_new
from daemon.project import toolchain
from daemon.project.failures import BuildFailed
from daemon.steps import audit, auditing, sources
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.fakes import page_project


class InlineQueue:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def enqueue(self, version_id: str) -> None:
        self.ids.append(version_id)


def test_the_audit_thread_ends_before_a_build_that_failed_mid_way(bench: Bench,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bench.rt.cfg.build.audit = "warn"
    seen: dict[str, threading.Thread] = {}

    def slow_audit(ctx: object, scratch: Path) -> audit.AuditJob:
        job = audit.AuditJob("lock")

        def work() -> None:
            time.sleep(1.0)  # pnpm audit waiting on the advisory database
            job.outcome = toolchain.AuditOutcome("passed", 0, "")

        job.thread = threading.Thread(target=work, name="previewd-audit", daemon=True)
        job.thread.start()
        seen["thread"] = job.thread
        return job

    def failing_snapshot(*_a: object, **_k: object) -> None:
        raise BuildFailed("build_failed", "the snapshot step failed")

    monkeypatch.setattr(auditing, "start_job", slow_audit)
    monkeypatch.setattr(sources, "snapshot", failing_snapshot)
    bench.gen.queue.append(page_project("Audit"))
    q = InlineQueue()
    v = submit_new(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    assert ProjectVersion.get_by_id(v.version_id).status == "failed"
    assert not seen["thread"].is_alive(), "the audit thread outlived its build"
