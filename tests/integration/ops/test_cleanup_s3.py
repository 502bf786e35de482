"""Cleanup against a real S3-protocol server (moto): archive sets the storage class; a lost object is re-uploaded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from daemon.ops import cleanup
from sync.objects import S3ObjectStore
from tests.integration.ops.conftest import NOW, Seeder
from tests.integration.sync.support import s3_admin


@pytest.fixture
def s3(ops: Seeder, moto_endpoint: str) -> Iterator[S3ObjectStore]:
    endpoint = moto_endpoint
    name = f"ops-{uuid.uuid4().hex[:12]}"
    s3_admin(endpoint).create_bucket(Bucket=name)
    store = S3ObjectStore(name, endpoint_url=endpoint, region="us-east-1", access_key="testing",
                          secret_key="testing")
    ops.rt.remote_objects = store
    yield store


def test_archive_sets_storage_class_and_missing_object_is_reuploaded(ops: Seeder, s3: S3ObjectStore) -> None:
    old = ops.version("u", "p", 95, remote_artifact=True)
    recent = ops.version("u", "p", 10, remote_artifact=True)
    ops.make_live(ops.version("u", "p", 1))
    s3.delete(ops.artifact(recent))
    report = cleanup.run_cleanup(ops.rt, dry_run=False, now=NOW)
    assert report.ok, report.to_json()
    assert s3.storage_class(ops.artifact(old)) == "STANDARD_IA"
    assert s3.storage_class(ops.artifact(recent)) == "STANDARD"
    row = ops.row(old)
    assert row is not None and row.archived_at == NOW and row.artifact_url == s3.url(ops.artifact(old))
    # the local backup copy left the hot folder too
    assert (ops.rt.data_dir / "objects" / "_archive" / ops.artifact(old)).is_file()
    assert report.step("check_artifacts").counts["reuploaded"] == 1  # type: ignore[union-attr]
    assert s3.exists(ops.artifact(recent)) and ops.row(recent).needs_rebuild is False  # type: ignore[union-attr]
