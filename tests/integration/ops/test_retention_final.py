"""Issue 24, attack 3: retention is final. A deleted preview carries a tombstone (replicated with its row), so no
droplet fetches it back; the cleanup finds rows by state, so a row whose URL is already null is still finished."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.ops import cleanup
from daemon.publish.previewfetch import PreviewResolver
from tests.integration.ops.conftest import NOW, Seeder


def _run(ops: Seeder) -> cleanup.CleanupReport:
    report = ops.d.ops.cleanup.run(dry_run=False, now=NOW)
    assert report.ok, report.to_json()
    return report


def test_deleted_preview_is_tombstoned_and_replicated(ops: Seeder) -> None:
    old = ops.version("u", "p", 40)
    ops.make_live(ops.version("u", "p", 1))
    _run(ops)
    row = ops.row(old)
    assert row is not None and row.preview_deleted_at == NOW and row.preview_url is None
    assert not ops.preview_dir(old).exists()
    assert versions.to_record(row)["preview_deleted_at"] is not None  # the replica record carries it
    assert ops.rt.layout.local_object(ops.artifact(old)).is_file()  # the snapshot zip stays (archive rule)


def test_a_row_whose_url_an_earlier_run_nulled_is_found_by_state(ops: Seeder) -> None:
    """The reported bug: the cleanup nulled the URL, a droplet fetched the preview back from the bucket, and
    later cleanups skipped the row because its URL was null."""
    old = ops.version("u", "p", 40)
    ops.make_live(ops.version("u", "p", 1))
    ProjectVersion.update(preview_url=None).where(ProjectVersion.version_id == old.version_id).execute()
    assert ops.preview_dir(old).is_dir()  # served again: re-fetched from the object store
    report = _run(ops)
    assert report.step("delete_old_previews").counts.get("previews") == 1, report.to_json()  # type: ignore[union-attr]
    assert not ops.preview_dir(old).exists()
    assert ops.row(old).preview_deleted_at == NOW  # type: ignore[union-attr]
    # and once finished, later runs have nothing left to do for it
    again = _run(ops)
    assert not again.step("delete_old_previews").counts.get("previews")  # type: ignore[union-attr]
    assert not again.step("delete_old_previews").counts.get("finished")  # type: ignore[union-attr]


def test_a_run_that_stops_part_way_is_finished_by_the_next(ops: Seeder, monkeypatch: pytest.MonkeyPatch) -> None:
    old = ops.version("u", "p", 40)
    other = ops.version("u", "q", 41)  # another tenant's old preview, in the same run
    ops.make_live(ops.version("u", "p", 1))
    ops.make_live(ops.version("u", "q", 1))
    real = ops.rt.deployer.delete

    def flaky(dep: str) -> None:
        if dep.startswith("p-"):
            raise RuntimeError("deployer unreachable")
        real(dep)

    monkeypatch.setattr(ops.rt.deployer, "delete", flaky)
    failed = ops.d.ops.cleanup.run(dry_run=False, now=NOW)
    step = failed.step("delete_old_previews")
    assert step is not None and step.error and step.counts.get("unfinished") == 1, step.to_json()
    row = ops.row(old)
    assert row is not None and row.preview_deleted_at == NOW and row.preview_url  # decided, not done
    done = ops.row(other)
    assert done is not None and done.preview_deleted_at == NOW and done.preview_url is None  # not held up
    monkeypatch.setattr(ops.rt.deployer, "delete", real)
    report = _run(ops)
    assert report.step("delete_old_previews").counts.get("finished") == 1  # type: ignore[union-attr]
    assert not ops.preview_dir(old).exists() and ops.row(old).preview_url is None  # type: ignore[union-attr]


class _Replica:
    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def get_version(self, version_id: str) -> dict[str, Any] | None:
        return self.rows.get(version_id)

    def deleted_previews(self, version_ids: list[str]) -> list[str]:
        return sorted(v for v in version_ids if (self.rows.get(v) or {}).get("preview_deleted_at"))


def test_resolver_never_fetches_a_tombstoned_preview_back(ops: Seeder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A droplet's resolver (fleet mode) refuses a tombstoned version, whether its own row or the replica's says
    so, instead of fetching the artifact zip from the bucket again."""
    from daemon.deployers.previewnames import deployment_id_for
    from sync.objects import LocalObjectStore

    elsewhere = ops.version("u", "p", 40)
    mine = ops.version("u", "p", 35)
    served = ops.version("u", "p", 36)  # the control: built elsewhere, its preview kept
    ops.make_live(ops.version("u", "p", 1))
    bucket = LocalObjectStore(ops.rt.data_dir.parent / "bucket")
    for v in (elsewhere, mine, served):
        bucket.put_file(ops.artifact(v), ops.rt.layout.local_object(ops.artifact(v)))
        ops.rt.deployer.delete(deployment_id_for("p", v.version_id))
    record = {"user_id": "u", "project_id": "p", "status": "deployed", "rollback_of": None,
              "preview_deleted_at": "2026-05-01T00:00:00+00:00"}
    monkeypatch.setattr(ops.rt, "remote_objects", bucket)
    monkeypatch.setattr(ops.rt, "replica", _Replica({elsewhere.version_id: record, served.version_id: {
        **record, "preview_deleted_at": None}}))
    ProjectVersion.delete().where(ProjectVersion.version_id.in_([elsewhere.version_id, served.version_id])).execute()
    ProjectVersion.update(preview_deleted_at=NOW).where(ProjectVersion.version_id == mine.version_id).execute()
    resolver = PreviewResolver(ops.rt, 1 << 20)  # type: ignore[arg-type]
    assert resolver(deployment_id_for("p", elsewhere.version_id)) is None  # the replica's tombstone
    assert resolver(deployment_id_for("p", mine.version_id)) is None  # this droplet's own tombstone
    assert resolver.fetches == 0
    assert resolver(deployment_id_for("p", served.version_id)) == deployment_id_for("p", served.version_id)
    assert resolver.fetches == 1 and ops.preview_dir(served).is_dir()
    assert not ops.preview_dir(elsewhere).exists() and not ops.preview_dir(mine).exists()


def test_sweep_drops_the_copies_the_replica_says_are_deleted(ops: Seeder, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = ops.version("u", "p", 40)
    stays = ops.version("u", "p", 20)
    ops.make_live(stays)
    ProjectVersion.delete().where(ProjectVersion.version_id == gone.version_id).execute()  # another droplet's
    replica = _Replica({gone.version_id: {"preview_deleted_at": "2026-05-01"}})
    from daemon.ops.retention import RetentionSweep

    sweep = RetentionSweep(ops.rt.layout.previews, ops.rt.deployer, replica, ops.rt.fleet,  # type: ignore[arg-type]
                           sync_interval_s=ops.rt.cfg.sync.interval_s)
    dropped = sweep.sweep()
    assert dropped == [ops.preview_dir(gone).name]
    assert not ops.preview_dir(gone).exists() and ops.preview_dir(stays).is_dir()


def test_a_row_with_a_reserved_id_from_before_the_rule_stops_no_step(ops: Seeder) -> None:
    """Issue 24, attack 2's tail: a row of user `_archive` (written before sync.names reserved it) named a key
    no store accepts, and the archive step failed with InvalidKey at that row on every run, so nobody's old
    artifacts were archived any more. Such a row is now skipped and counted; the others are archived."""
    from datetime import UTC, timedelta

    from ulid import ULID

    dave = ops.version("dave", "p", 95)
    ops.make_live(ops.version("dave", "p", 1))
    created = NOW - timedelta(days=95, seconds=5)
    vid = str(ULID.from_datetime(created.replace(tzinfo=UTC)))
    legacy = ops.rt.layout.objects / "_archive" / "carol" / "snapshots" / f"{vid}.zip"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"24 MB in the attack")
    ProjectVersion.create(version_id=vid, user_id="_archive", project_id="carol", prompt="x", kind="new",
                          status="deployed", created_at=created, updated_at=created, artifact_url=legacy.as_uri())
    for _ in range(2):  # every run, not just the first; no step fails for it
        report = _run(ops)
    archive = report.step("archive_artifacts")
    assert ops.row(dave).archived_at == NOW  # type: ignore[union-attr]
    assert archive is not None and archive.counts.get("unrecognised_url") == 1, archive.to_json()
