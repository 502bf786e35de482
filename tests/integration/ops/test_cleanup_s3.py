"""Cleanup against a real S3-protocol server (moto): archive sets the storage class; a lost object is re-uploaded."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli.serve import Daemon
from sync.objects import S3ObjectStore
from tests.integration.ops.conftest import NOW, Seeder
from tests.integration.sync.support import s3_admin


@pytest.fixture
def s3(moto_endpoint: str) -> S3ObjectStore:
    name = f"ops-{uuid.uuid4().hex[:12]}"
    s3_admin(moto_endpoint).create_bucket(Bucket=name)
    return S3ObjectStore(name, endpoint_url=moto_endpoint, region="us-east-1", access_key="testing",
                         secret_key="testing")


@pytest.fixture
def ops(s3: S3ObjectStore, tmp_path: Path, make_daemon: Callable[..., Daemon]) -> Seeder:
    """The ops seeder over a daemon whose object store is the moto bucket (wired as the configured one would be)."""
    return Seeder(make_daemon(paths={"pnpm_store": str(tmp_path / "pnpm-store")}, edges={"remote_objects": s3}))


def test_archive_sets_storage_class_and_missing_object_is_reuploaded(ops: Seeder, s3: S3ObjectStore) -> None:
    old = ops.version("u", "p", 95, remote_artifact=True)
    recent = ops.version("u", "p", 10, remote_artifact=True)
    ops.make_live(ops.version("u", "p", 1))
    s3.delete(ops.artifact(recent))
    report = ops.d.ops.cleanup.run(dry_run=False, now=NOW)
    assert report.ok, report.to_json()
    assert s3.storage_class(ops.artifact(old)) == "STANDARD_IA"
    assert s3.storage_class(ops.artifact(recent)) == "STANDARD"
    row = ops.row(old)
    assert row is not None and row.archived_at == NOW and row.artifact_url == s3.url(ops.artifact(old))
    # the local backup copy left the hot folder too
    assert (ops.rt.data_dir / "objects" / "_archive" / ops.artifact(old)).is_file()
    assert report.step("check_artifacts").counts["reuploaded"] == 1  # type: ignore[union-attr]
    assert s3.exists(ops.artifact(recent)) and ops.row(recent).needs_rebuild is False  # type: ignore[union-attr]
