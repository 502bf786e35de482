"""The go-live path, rollback and restore against fakes: each way a version goes live does the same bookkeeping."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.core import versions
from daemon.core.config import load
from daemon.core.db import ProjectVersion
from daemon.core.errors import Conflict
from daemon.generators import GenerationError
from daemon.intake import restore, rollback
from daemon.intake.submit import BuildRequest, submit_new, submit_rebuild
from daemon.publish import golive
from daemon.runtime import Runtime
from daemon.steps.pipeline import Pipeline
from tests.support import TEST_SECRET
from tests.unit.pipeline.fakes import FakeGenerator, MemoryDeployer, page_project
from tests.unit.pipeline.test_pipeline import InlineQueue, _new

from .conftest import Bench


def _git_tags(repo: Path) -> set[str]:
    out = subprocess.run(["git", "--git-dir", str(repo), "tag", "--list"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_fast_rollback_is_live_packed_and_survives_a_restore_on_an_empty_data_dir(bench: Bench,
                                                                                  tmp_path: Path) -> None:
    v1 = _new(bench, "one")
    bench.gen.queue.append(page_project("two"))
    q = InlineQueue()
    submit_rebuild(bench.rt, q, BuildRequest("u1", "p1", "two"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])

    rb = rollback.rollback(bench.rt, InlineQueue(), "u1", "p1", v1.version_id)  # type: ignore[arg-type]
    assert rb.status == "deployed" and rb.rollback_of == v1.version_id
    golive.drain_after(bench.rt)  # the history bookkeeping runs after the answer
    assert versions.live_version("u1", "p1").version_id == rb.version_id  # type: ignore[union-attr]
    assert b'"latestVersionId": "' + rb.version_id.encode() in (bench.rt.kv.get("u1:p1") or b"")
    # the rollback version has its own commit and its own recovery pack (it had neither before publish)
    tops = [k.rsplit("_to_", 1)[1].removesuffix(".pack.zip") for k in bench.rt.local_objects.list("u1/p1/packs/")]
    assert rb.version_id in tops
    # the dist window slid over the rollback as over any deployed version
    assert len(bench.rt.repo("u1", "p1").dist_versions()) <= golive.DIST_WINDOW

    # another droplet: an empty data dir that has only the object store's packs
    other = tmp_path / "droplet-b"
    (other / "data").mkdir(parents=True)
    shutil.copytree(bench.rt.layout.objects / "u1", other / "data" / "objects" / "u1")
    bench.rt.close()
    path = other / "previewd.toml"
    path.write_text(f'[paths]\ndata_dir = "{other / "data"}"\n[render]\nenabled = false\n')
    rt2 = Runtime(load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET}), generator=FakeGenerator(),
                  deployer=MemoryDeployer())
    try:
        out = restore.restore(rt2, "u1", "p1")
        assert out["versions"] == 3
        repo_path = rt2.layout.repo_path("u1", "p1")
        assert rb.version_id in _git_tags(repo_path)
        fsck = subprocess.run(["git", "--git-dir", str(repo_path), "fsck", "--no-progress"], capture_output=True,
                              text=True)
        assert fsck.returncode == 0, fsck.stderr
        assert rt2.repo("u1", "p1").files(rb.version_id) == rt2.repo("u1", "p1").files(v1.version_id)
    finally:
        rt2.close()


def test_undo_redo_go_live_through_publish(bench: Bench) -> None:
    v1 = _new(bench, "one")
    bench.gen.queue.append(page_project("two"))
    q = InlineQueue()
    submit_rebuild(bench.rt, q, BuildRequest("u1", "p1", "two"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v2 = versions.live_version("u1", "p1")
    assert v2 is not None and v2.version_id != v1.version_id

    assert golive.walk(bench.rt, "u1", "p1", "undo").version_id == v1.version_id
    assert b'"latestVersionId": "' + v1.version_id.encode() in (bench.rt.kv.get("u1:p1") or b"")
    assert golive.walk(bench.rt, "u1", "p1", "redo").version_id == v2.version_id
    assert b'"latestVersionId": "' + v2.version_id.encode() in (bench.rt.kv.get("u1:p1") or b"")
    with pytest.raises(Conflict) as exc:
        golive.walk(bench.rt, "u1", "p1", "redo")
    assert exc.value.code == "nothing_to_redo"


def test_render_check_runs_once_per_version(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.publish import screens

    bench.rt.cfg.render.enabled = True  # type: ignore[misc]
    calls: list[str] = []

    def fake_check(rt: Runtime, version_id: str) -> None:
        calls.append(version_id)
        versions.update(rt.outbox, version_id, render_status="ok")

    monkeypatch.setattr(screens, "check_version", fake_check)
    v = _new(bench)
    assert calls == [v.version_id]
    golive.check_render(bench.rt, v.version_id, inline=True)  # already checked: not again
    assert calls == [v.version_id]


def test_pipeline_parks_nothing_on_the_runtime(bench: Bench) -> None:
    _new(bench)
    assert not hasattr(bench.rt, "dist_pending")
    assert isinstance(bench.pipeline, Pipeline) and bench.rt.live_logs == {}


def test_failed_target_cannot_be_rolled_back_to(bench: Bench) -> None:
    bench.gen.queue.append(GenerationError("boom"))
    q = InlineQueue()
    v = submit_new(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    with pytest.raises(Conflict) as exc:
        rollback.rollback(bench.rt, InlineQueue(), "u1", "p1", v.version_id)  # type: ignore[arg-type]
    assert exc.value.code == "target_failed"
    assert ProjectVersion.select().count() == 1
