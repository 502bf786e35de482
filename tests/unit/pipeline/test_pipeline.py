"""The pipeline against fakes: what it builds, records and publishes, and how each failure ends a version."""

from __future__ import annotations

import subprocess
import zipfile

from daemon.core import versions
from daemon.core.db import PendingDeployment, Project, ProjectVersion
from daemon.generators import GenerationError
from daemon.intake.submit import BuildRequest, submit_new, submit_rebuild
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.fakes import page_project


class InlineQueue:
    """Runs nothing: the test calls the pipeline itself, so each step is visible."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def enqueue(self, version_id: str) -> None:
        self.ids.append(version_id)


def _new(b: Bench, title: str = "Bakery", project: str = "p1") -> ProjectVersion:
    b.gen.queue.append(page_project(title))
    q = InlineQueue()
    v = submit_new(b.rt, q, BuildRequest("u1", project, f"a {title}"))  # type: ignore[arg-type]
    b.pipeline.run(q.ids[0])
    return ProjectVersion.get_by_id(v.version_id)


def test_build_deploys_records_and_publishes(bench: Bench) -> None:
    v = _new(bench)
    assert v.status == "deployed", v.failure_message
    assert v.preview_url and v.node_version and v.pnpm_version == "10.0.0"
    # the deployer got the build output, nothing else
    assert list(bench.dep.sites.values()) == [{"index.html": b"<h1>Bakery</h1>"}]
    # live: the project row and the pointer in the local KV (written at once, not by the sync loop later)
    assert Project.get(Project.project_id == "p1").live_version_id == v.version_id
    assert b'"latestVersionId": "' + v.version_id.encode() in (bench.rt.kv.get("u1:p1") or b"")
    # the artifact zip holds the output
    zpath = bench.rt.layout.local_object(bench.rt.layout.artifact_key("u1", "p1", v.version_id))
    assert zipfile.ZipFile(zpath).namelist() == ["index.html"]
    # history: a source commit, a dist ref and a recovery pack
    repo = bench.rt.repo("u1", "p1")
    assert repo.has_version(v.version_id) and v.version_id in repo.dist_versions()
    packs = bench.rt.local_objects.list("u1/p1/packs/")
    assert [k.rsplit("_to_", 1)[1] for k in packs] == [f"{v.version_id}.pack.zip"]
    out = subprocess.run(["git", "--git-dir", str(repo.path), "fsck", "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_rebuild_starts_from_the_base_and_moves_the_undo_stack(bench: Bench) -> None:
    v1 = _new(bench)
    bench.gen.queue.append(page_project("Bakery v2"))
    q = InlineQueue()
    v2 = submit_rebuild(bench.rt, q, BuildRequest("u1", "p1", "darker"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v2 = ProjectVersion.get_by_id(v2.version_id)
    assert v2.status == "deployed" and v2.parent_version_id == v1.version_id
    assert bench.gen.requests[-1].base_files is not None  # the generator saw the base's files
    assert versions.navigation("u1", "p1") == {"liveVersionId": v2.version_id, "undo": [v1.version_id], "redo": []}


def test_generator_failure_fails_the_version_and_touches_nothing(bench: Bench) -> None:
    bench.gen.queue.append(GenerationError("model overloaded"))
    q = InlineQueue()
    v = submit_new(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v = ProjectVersion.get_by_id(v.version_id)
    assert (v.status, v.failure_reason) == ("failed", "generation_failed")
    assert "model overloaded" in (v.failure_message or "")
    assert bench.dep.sites == {} and bench.rt.kv.get("u1:p1") is None
    assert "generation_failed" in bench.rt.layout.log_path(v.version_id).read_text()


def test_failing_build_script_is_build_failed(bench: Bench) -> None:
    bench.gen.queue.append(page_project("Broken", build="echo nope >&2; exit 3"))
    q = InlineQueue()
    v = submit_new(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v = ProjectVersion.get_by_id(v.version_id)
    assert (v.status, v.failure_reason) == ("failed", "build_failed")
    assert "nope" in bench.rt.layout.log_path(v.version_id).read_text()


def test_no_output_dir_is_no_output(bench: Bench) -> None:
    bench.gen.queue.append(page_project("Nothing", build="true"))
    q = InlineQueue()
    v = submit_new(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    assert ProjectVersion.get_by_id(v.version_id).failure_reason == "no_output"


def test_deploy_error_is_deploy_failed_and_the_old_version_stays_live(bench: Bench) -> None:
    v1 = _new(bench)
    bench.dep.fail_with = "platform said no"
    bench.gen.queue.append(page_project("v2"))
    q = InlineQueue()
    v2 = submit_rebuild(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v2 = ProjectVersion.get_by_id(v2.version_id)
    assert (v2.status, v2.failure_reason, v2.failure_message) == ("failed", "deploy_failed", "platform said no")
    assert versions.live_version("u1", "p1").version_id == v1.version_id  # type: ignore[union-attr]


def test_unconfirmed_deploy_waits_then_the_confirmation_publishes(bench: Bench) -> None:
    from daemon.publish import deploywatch

    bench.dep.state = "pending"
    v = _new(bench)
    assert v.status == "deploying" and v.cf_deployment_id
    assert PendingDeployment.get_or_none(PendingDeployment.version_id == v.version_id) is not None
    assert bench.rt.kv.get("u1:p1") is None  # not live before the platform confirms
    assert deploywatch.settle(bench.rt, v.version_id, "deployed") is True
    assert deploywatch.settle(bench.rt, v.version_id, "deployed") is False  # a replay changes nothing
    assert ProjectVersion.get_by_id(v.version_id).status == "deployed"
    assert b'"latestVersionId": "' + v.version_id.encode() in (bench.rt.kv.get("u1:p1") or b"")
    # the recovery pack was written when the upload was accepted, before the confirmation
    assert bench.rt.local_objects.list("u1/p1/packs/")
