"""One ObjectStore suite run against every backend: LocalObjectStore and S3ObjectStore (moto over HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.errors import InvalidKey, NotFound
from sync.objects import LocalObjectStore, ObjectStore, S3ObjectStore
from tests.integration.sync.support import s3_admin

KEY = "user_1/proj-1/snapshots/01J0AAAAAAAAAAAAAAAAAAAAAA.zip"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "bucket")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("bucket")
        yield S3ObjectStore(bucket, endpoint_url=endpoint, access_key="testing", secret_key="testing")


def make_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_put_get_roundtrip(store: ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(70_000)
    store.put_file(KEY, make_file(tmp_path, "a.zip", data), "application/zip")
    assert store.exists(KEY)
    dest = tmp_path / "out" / "deep" / "a.zip"
    store.get_file(KEY, dest)
    assert dest.read_bytes() == data
    assert store.open_bytes(KEY) == data
    assert [p.name for p in dest.parent.iterdir()] == ["a.zip"]  # no temp files left behind


def test_put_replaces(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file(KEY, make_file(tmp_path, "1", b"first"))
    store.put_file(KEY, make_file(tmp_path, "2", b"second"))
    assert store.open_bytes(KEY) == b"second"


def test_missing_object(store: ObjectStore, tmp_path: Path) -> None:
    assert not store.exists(KEY)
    with pytest.raises(NotFound):
        store.open_bytes(KEY)
    with pytest.raises(NotFound):
        store.get_file(KEY, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(NotFound):
        store.set_storage_class(KEY, "archive")


def test_delete_and_delete_missing(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file(KEY, make_file(tmp_path, "a", b"x"))
    store.delete(KEY)
    assert not store.exists(KEY)
    store.delete(KEY)


def test_list_by_prefix(store: ObjectStore, tmp_path: Path) -> None:
    keys = ["u1/p1/snapshots/a.zip", "u1/p1/packs/git_a_to_b.pack.zip", "u1/p2/snapshots/b.zip", "u2/x.zip"]
    src = make_file(tmp_path, "f", b"x")
    for key in keys:
        store.put_file(key, src)
    assert store.list("u1/p1/") == sorted(keys[:2])
    assert store.list("u1/p") == sorted(keys[:3])
    assert store.list("") == sorted(keys)
    assert store.list("nothing/") == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "..", "a/./b", "a/", "a\\b", "a\nb"])
def test_bad_keys_are_refused(store: ObjectStore, tmp_path: Path, key: str) -> None:
    src = make_file(tmp_path, "f", b"x")
    with pytest.raises(InvalidKey):
        store.put_file(key, src)
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.url(key)


def test_missing_source_file(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put_file(KEY, tmp_path / "nope.zip")
    assert not store.exists(KEY)


def test_storage_class_change_keeps_the_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file(KEY, make_file(tmp_path, "a", b"payload"))
    store.set_storage_class(KEY, "archive")
    assert store.exists(KEY)
    assert store.open_bytes(KEY) == b"payload"
    assert store.list("user_1/") == [KEY]
    store.set_storage_class(KEY, "STANDARD")
    assert store.open_bytes(KEY) == b"payload"
    with pytest.raises(ValueError, match="storage class"):
        store.set_storage_class(KEY, "FROZEN")


def test_url_names_the_object(store: ObjectStore) -> None:
    url = store.url(KEY)
    assert url.endswith("/" + KEY)
    assert url.startswith(("file://", "s3://"))


# -- backend specifics --------------------------------------------------------------------------------------


def test_local_archive_mirror_layout(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "b")
    store.put_file(KEY, make_file(tmp_path, "a", b"x"))
    assert (tmp_path / "b" / KEY).is_file()
    store.set_storage_class(KEY, "archive")
    assert not (tmp_path / "b" / KEY).exists()
    assert (tmp_path / "b" / "_archive" / KEY).is_file()
    assert store.url(KEY) == (tmp_path / "b" / "_archive" / KEY).resolve().as_uri()
    store.put_file(KEY, make_file(tmp_path, "a", b"y"))  # a fresh put is STANDARD again
    assert (tmp_path / "b" / KEY).read_bytes() == b"y" and not (tmp_path / "b" / "_archive" / KEY).exists()
    store.delete(KEY)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["_archive", "_tmp"]  # empty folders pruned
    with pytest.raises(InvalidKey):
        store.put_file("_archive/x", make_file(tmp_path, "a", b"x"))


def test_local_key_colliding_with_a_folder(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "b")
    store.put_file("a/b", make_file(tmp_path, "f", b"x"))
    with pytest.raises(InvalidKey):
        store.put_file("a/b/c", make_file(tmp_path, "f", b"x"))
    assert list((tmp_path / "b" / "_tmp").iterdir()) == []


def test_s3_multipart_above_threshold(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    mib = 1024 * 1024
    store = S3ObjectStore(
        bucket,
        endpoint_url=moto_endpoint,
        access_key="testing",
        secret_key="testing",
        multipart_threshold=5 * mib,
        multipart_chunksize=5 * mib,
    )
    data = os.urandom(11 * mib)
    store.put_file("big/artifact.zip", make_file(tmp_path, "big", data), "application/zip")
    head = s3_admin(moto_endpoint).head_object(Bucket=bucket, Key="big/artifact.zip")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: it went up as multipart
    assert head["ContentType"] == "application/zip"
    store.get_file("big/artifact.zip", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


def test_s3_storage_class_and_prefix(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    store = S3ObjectStore(bucket, endpoint_url=moto_endpoint, access_key="t", secret_key="t", prefix="droplet1/")
    store.put_file(KEY, make_file(tmp_path, "a", b"x"), "application/zip")
    assert store.url(KEY) == f"s3://{bucket}/droplet1/{KEY}"
    admin = s3_admin(moto_endpoint)
    assert [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]] == [f"droplet1/{KEY}"]
    assert store.list("") == [KEY]
    store.set_storage_class(KEY, "archive")
    head = admin.head_object(Bucket=bucket, Key=f"droplet1/{KEY}")
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ContentType"] == "application/zip"  # metadata kept by the self-copy
    assert store.storage_class(KEY) == "STANDARD_IA"


def test_s3_unknown_bucket_is_a_non_retryable_error(moto_endpoint: str, tmp_path: Path) -> None:
    from sync.errors import RemoteError

    store = S3ObjectStore("no-such-bucket-x", endpoint_url=moto_endpoint, access_key="t", secret_key="t")
    with pytest.raises(RemoteError) as info:
        store.put_file(KEY, make_file(tmp_path, "a", b"x"))
    assert not info.value.retryable
