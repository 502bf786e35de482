"""Nightly cleanup on a seeded database with a controlled clock: every rule at its boundary, dry run, failures."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.serve import Daemon
from daemon.core.db import ProjectVersion
from daemon.ops import cleanup
from sync.objects import LocalObjectStore
from tests.integration.ops.conftest import NOW, Seeder, db_dump, tree_digest


def _run(ops: Seeder, dry: bool = False) -> cleanup.CleanupReport:
    report = ops.d.ops.cleanup.run(dry_run=dry, now=NOW)
    assert report.ok, report.to_json()
    return report


def test_archive_boundary_89_90_91_days(ops: Seeder) -> None:
    v89, v90, v91 = (ops.version("u", "p", d) for d in (89, 90, 91))
    ops.make_live(ops.version("u", "p", 1))
    report = _run(ops)
    assert report.step("archive_artifacts").counts.get("archived") == 2  # type: ignore[union-attr]
    root = ops.rt.data_dir / "objects"
    assert (root / ops.artifact(v89)).is_file() and ops.row(v89).archived_at is None  # type: ignore[union-attr]
    for v in (v90, v91):
        row = ops.row(v)
        assert row is not None and row.archived_at == NOW
        assert not (root / ops.artifact(v)).exists()
        assert (root / "_archive" / ops.artifact(v)).is_file()
        assert row.artifact_url == (root / "_archive" / ops.artifact(v)).as_uri()
        assert row.row_version > 1  # through versions.update: replicated, never regressing
    # a second night finds nothing more to archive
    assert _run(ops).step("archive_artifacts").counts.get("archived") is None  # type: ignore[union-attr]


def test_keep_latest_200_vs_201_never_pinned_or_live(ops: Seeder) -> None:
    exact = [ops.version("u", "exact", 20 - i * 0.01, artifact=False, preview=False) for i in range(200)]
    over = [ops.version("u", "over", 20 - i * 0.01, artifact=i == 0, preview=False) for i in range(201)]
    guarded = [ops.version("u", "guarded", 20 - i * 0.01, artifact=False, preview=False, pinned=i == 0)
               for i in range(203)]
    ops.make_live(guarded[1])  # an undo made an old version live
    report = _run(ops)
    assert ProjectVersion.select().where(ProjectVersion.project_id == "exact").count() == 200
    assert ops.row(exact[0]) is not None
    assert ops.row(over[0]) is None and ops.row(over[1]) is not None
    assert not (ops.rt.data_dir / "objects" / ops.artifact(over[0])).exists()
    assert not ops.rt.layout.log_path(over[0].version_id).exists()
    assert ops.row(guarded[0]) is not None  # pinned
    assert ops.row(guarded[1]) is not None  # live
    assert ops.row(guarded[2]) is None
    step = report.step("keep_latest")
    assert step is not None and step.counts["rows"] == 2 and step.counts["kept_protected"] == 2


def test_rows_older_than_a_year_deleted_unless_pinned_or_live_tag_kept(ops: Seeder) -> None:
    old = [ops.version("u", "p", d, snapshot=True) for d in (400, 366, 365, 364)]
    pinned = ops.version("u", "p", 380, pinned=True)
    live = ops.version("u", "q", 500)
    ops.make_live(live)
    newest = ops.version("u", "p", 2, snapshot=True)
    ops.make_live(newest)
    _run(ops)
    assert [ops.row(v) is None for v in old] == [True, True, True, False]
    assert ops.row(pinned) is not None and ops.row(live) is not None
    for v in old[:3]:
        assert not ops.preview_dir(v).exists()
        assert not (ops.rt.data_dir / "objects" / ops.artifact(v)).exists()
    # the git tags stay: later versions descend from them and the packs name them
    repo = ops.rt.layout.project_dir("u", "p") / "repo.git"
    tags = subprocess.run(["git", "--git-dir", str(repo), "tag"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert {v.version_id for v in old} <= set(tags)
    assert subprocess.run(["git", "--git-dir", str(repo), "fsck", "--full"], capture_output=True).returncode == 0


def test_previews_boundary_29_30_31_never_live_or_pinned(ops: Seeder) -> None:
    v29, v30, v31 = (ops.version("u", "p", d) for d in (29, 30, 31))
    pinned = ops.version("u", "p", 45, pinned=True)
    live = ops.version("u", "q", 40)
    ops.make_live(live)
    ops.make_live(ops.version("u", "p", 1))
    report = _run(ops)
    assert ops.preview_dir(v29).is_dir() and ops.row(v29).preview_url  # type: ignore[union-attr]
    for v in (v30, v31):
        assert not ops.preview_dir(v).exists()
        assert ops.row(v).preview_url is None  # type: ignore[union-attr]
    assert ops.preview_dir(pinned).is_dir() and ops.preview_dir(live).is_dir()
    assert report.step("delete_old_previews").counts["previews"] == 2  # type: ignore[union-attr]


def test_dist_window_slides_to_three_and_prunes(ops: Seeder) -> None:
    made = [ops.version("u", "p", 10 - i, snapshot=True) for i in range(5)]
    ops.make_live(made[-1])
    report = _run(ops)
    repo = ops.rt.layout.project_dir("u", "p") / "repo.git"
    refs = subprocess.run(["git", "--git-dir", str(repo), "for-each-ref", "--format=%(refname)", "refs/dist/"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(refs) == sorted(f"refs/dist/{v.version_id}" for v in made[-3:])
    assert report.step("slide_dist_windows").counts["dist_refs_removed"] == 2  # type: ignore[union-attr]
    assert subprocess.run(["git", "--git-dir", str(repo), "fsck", "--full"], capture_output=True).returncode == 0


def _seed_everything(ops: Seeder) -> None:
    for days in (400, 380, 300, 250):
        ops.version("u", "p", days, snapshot=True)
    ops.make_live(ops.version("u", "p", 1, snapshot=True))
    gone = ops.version("u", "q", 20)
    (ops.rt.data_dir / "objects" / ops.artifact(gone)).unlink()
    ops.rt.kv.put("u:q", b'{"latestVersionId":"X","previewUrl":"x","timestamp":1}')


def test_dry_run_changes_nothing(ops: Seeder) -> None:
    _seed_everything(ops)
    data = ops.rt.data_dir
    before = (db_dump(data), tree_digest(data / "objects"), tree_digest(data / "previews"),
              tree_digest(data / "projects"), ops.rt.kv.get("u:q"), tree_digest(ops.rt.layout.store_dir))
    report = ops.d.ops.cleanup.run(dry_run=True, now=NOW)
    assert report.ok, report.to_json()
    after = (db_dump(data), tree_digest(data / "objects"), tree_digest(data / "previews"),
             tree_digest(data / "projects"), ops.rt.kv.get("u:q"), tree_digest(ops.rt.layout.store_dir))
    assert after == before
    counts = {s.name: s.counts for s in report.steps}
    # ... and says what it would have done
    assert counts["delete_old_rows"]["rows"] == 2
    assert counts["archive_artifacts"]["archived"] == 2
    assert counts["slide_dist_windows"]["dist_refs_removed"] == 2
    assert counts["check_artifacts"]["marked_needs_rebuild"] == 1
    assert counts["check_kv"]["repaired"] == 1
    assert "would_run" in counts["prune_pnpm_store"]
    json.dumps(report.to_json())  # what daemonctl prints


def test_a_failing_step_is_reported_and_the_rest_still_run(ops: Seeder, monkeypatch: pytest.MonkeyPatch) -> None:
    old = ops.version("u", "p", 400)
    stale = ops.version("u", "p", 31)
    ops.make_live(ops.version("u", "p", 1))

    def broken(ctx: Any, step: Any) -> None:
        raise OSError("disk on fire")

    steps = [(n, broken if n == "archive_artifacts" else f) for n, f in cleanup.STEPS]
    monkeypatch.setattr(cleanup, "STEPS", steps)
    report = ops.d.ops.cleanup.run(dry_run=False, now=NOW)
    assert not report.ok
    failed = [s for s in report.steps if s.error]
    assert [s.name for s in failed] == ["archive_artifacts"] and "disk on fire" in (failed[0].error or "")
    assert [s.name for s in report.steps] == [n for n, _ in cleanup.STEPS]
    assert ops.row(old) is None  # the later steps ran
    assert not ops.preview_dir(stale).exists()
    assert report.step("prune_pnpm_store").counts.get("ran") == 1  # type: ignore[union-attr]


def test_missing_remote_artifact_reuploaded_from_local_copy_else_needs_rebuild(
        tmp_path: Path, make_daemon: Callable[..., Daemon]) -> None:
    remote = LocalObjectStore(tmp_path / "bucket")  # a second store standing in for the bucket
    ops = Seeder(make_daemon(paths={"pnpm_store": str(tmp_path / "pnpm-store")}, edges={"remote_objects": remote}))
    kept = ops.version("u", "p", 3, remote_artifact=True)
    lost = ops.version("u", "p", 2, remote_artifact=True)
    ops.make_live(ops.version("u", "p", 1))
    remote.delete(ops.artifact(kept))
    remote.delete(ops.artifact(lost))
    (ops.rt.data_dir / "objects" / ops.artifact(lost)).unlink()
    report = _run(ops)
    counts = report.step("check_artifacts").counts  # type: ignore[union-attr]
    assert counts["missing"] == 2 and counts["reuploaded"] == 1 and counts["marked_needs_rebuild"] == 1
    assert remote.exists(ops.artifact(kept))
    assert remote.open_bytes(ops.artifact(kept)) == (ops.rt.data_dir / "objects" / ops.artifact(kept)).read_bytes()
    assert ops.row(kept).needs_rebuild is False  # type: ignore[union-attr]
    assert ops.row(lost).needs_rebuild is True  # type: ignore[union-attr]
    # next night: present again, nothing to do
    counts = _run(ops).step("check_artifacts").counts  # type: ignore[union-attr]
    assert "reuploaded" not in counts and "marked_needs_rebuild" not in counts


def test_kv_pointer_repaired_to_the_live_version(ops: Seeder) -> None:
    live = ops.version("u", "p", 1)
    ops.make_live(live)
    ops.rt.kv.put("u:p", b'{"latestVersionId":"01STALE","previewUrl":"http://old/","timestamp":1}')
    other = ops.version("u", "q", 2)
    ops.make_live(other)
    ops.rt.kv.delete("u:q")
    report = _run(ops)
    assert report.step("check_kv").counts["repaired"] == 2  # type: ignore[union-attr]
    for v in (live, other):
        ptr = json.loads(ops.rt.kv.get(f"u:{v.project_id}") or b"{}")
        assert ptr["latestVersionId"] == v.version_id and ptr["previewUrl"] == v.preview_url
    assert _run(ops).step("check_kv").counts.get("repaired") is None  # type: ignore[union-attr]


def test_pnpm_store_prune_runs_on_the_configured_store(ops: Seeder) -> None:
    report = _run(ops)
    step = report.step("prune_pnpm_store")
    assert step is not None and step.counts.get("ran") == 1
    assert str(ops.rt.layout.store_dir) in step.actions[0]


def test_concurrent_cleanup_refused(ops: Seeder) -> None:
    from daemon.core.errors import Conflict

    with cleanup._running, pytest.raises(Conflict) as exc:
        ops.d.ops.cleanup.run(dry_run=True, now=NOW)
    assert exc.value.code == "cleanup_running"


def test_a_project_over_its_history_budget_is_skipped_and_the_next_is_pruned(ops: Seeder) -> None:
    from tests.support.crafted_history import plant_version

    for project in ("a", "b"):
        made = [ops.version("u", project, 10 - i, snapshot=True) for i in range(5)]
    # u/a's history holds what a workspace snapshot recorded before the fix: a sparse file's 129 MiB of zeros
    plant_version(ops.rt.layout.project_dir("u", "a") / "repo.git", "legacy", {"index.html": "x"},
                  {"big.bin": 129 * 2**20})
    ops.make_live(made[-1])
    report = _run(ops)
    step = report.step("slide_dist_windows")
    assert step is not None and step.counts["repos_skipped_over_budget"] == 1, step.to_json()
    assert any(a.startswith("u/a: skipped: prune of a: object big.bin is") for a in step.actions), step.actions
    repo_b = ops.rt.layout.project_dir("u", "b") / "repo.git"
    refs = subprocess.run(["git", "--git-dir", str(repo_b), "for-each-ref", "--format=%(refname)", "refs/dist/"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(refs) == sorted(f"refs/dist/{v.version_id}" for v in made[-3:])
    packs = list((repo_b / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1 and not any(p.name != "pack" and p.is_dir() and any(p.iterdir())
                                       for p in (repo_b / "objects").iterdir() if len(p.name) == 2)
