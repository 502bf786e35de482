"""Pure rules: pointer encoding, key checks, storage classes, record validation, the backend registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.errors import ConfigError, InvalidKey, InvalidRecord, RemoteError
from sync.kv import LocalKV, decode_pointer, encode_pointer, pointer_key
from sync.objects import LocalObjectStore, normalize_storage_class
from sync.objects import validate_key as object_key
from sync.registry import make_kv, make_object_store, make_replica
from sync.replica import RECORD_FIELDS, PostgresReplica, validate_record


def test_pointer_encoding_is_the_seed_shape() -> None:
    raw = encode_pointer("01JABC", "https://p.dev", 1_700_000_000_123)
    assert raw == b'{"latestVersionId":"01JABC","previewUrl":"https://p.dev","timestamp":1700000000123}'
    assert decode_pointer(raw)["timestamp"] == 1_700_000_000_123


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"latestVersionId": 1, "previewUrl": "", "timestamp": 1}', b"\xff\xfe", b"{}"]
)
def test_decode_pointer_refuses_other_shapes(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_pointer(raw)


@pytest.mark.parametrize(("args"), [("", "u", 1), ("v", 3, 1), ("v", "u", -1), ("v", "u", 1.5), ("v", "u", True)])
def test_encode_pointer_refuses_bad_values(args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        encode_pointer(*args)


@pytest.mark.parametrize(("user", "project"), [("", "p"), ("u", ""), ("a:b", "p"), ("u", "p:q")])
def test_pointer_key_refuses_ambiguous_parts(user: str, project: str) -> None:
    with pytest.raises(InvalidKey):
        pointer_key(user, project)


@pytest.mark.parametrize("key", ["a", "u1/p1/snapshots/01J.zip", "a/b.c/d-e_f", "ünï/x"])
def test_object_keys_accepted(key: str) -> None:
    assert object_key(key) == key


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "../a", "a/.", "a\\b", "a\x00b", "x" * 1025, 5])
def test_object_keys_refused(key: Any) -> None:
    with pytest.raises(InvalidKey):
        object_key(key)


def test_storage_class_names() -> None:
    assert normalize_storage_class("archive") == "STANDARD_IA"
    assert normalize_storage_class("standard") == "STANDARD"
    assert normalize_storage_class("glacier_ir") == "GLACIER_IR"
    with pytest.raises(ValueError):
        normalize_storage_class("cold")


def full_record(**overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    rec.update(
        version_id="v1",
        user_id="u",
        project_id="p",
        status="queued",
        needs_rebuild=False,
        pinned=False,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00+00:00",
        row_version=1,
    )
    rec.update(overrides)
    return rec


def test_valid_record_passes() -> None:
    rec = full_record(claude_json={"a": 1}, build_duration_ms=5, archived_at="2026-01-02T00:00:00")
    assert validate_record(rec) is rec


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"row_version": -1},
        {"row_version": True},
        {"build_duration_ms": "5"},
        {"prompt": 3},
        {"claude_json": []},
        {"needs_rebuild": None},
        {"created_at": None},
        {"updated_at": "not a time"},
        {"archived_at": 5},
        {"project_id": None},
        {"checks": "pass"},
        {"timings": [1, 2]},
    ],
)
def test_invalid_records_fail_with_a_reason(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord) as info:
        validate_record(full_record(**change))
    assert info.value.code == "invalid_record" and "v1" in str(info.value)


def test_a_record_older_than_the_checks_fields_still_flows() -> None:
    rec = full_record()
    del rec["checks"], rec["timings"]
    assert validate_record(rec)["checks"] is None and rec["timings"] is None


def test_records_with_missing_or_extra_keys_fail() -> None:
    rec = full_record(extra=1)
    del rec["pinned"]
    with pytest.raises(InvalidRecord, match=r"pinned.*extra"):
        validate_record(rec)
    with pytest.raises(InvalidRecord):
        validate_record(["not", "a", "dict"])


def test_registry_builds_by_name(tmp_path: Path) -> None:
    assert isinstance(make_kv("local", db_path=tmp_path / "kv.db"), LocalKV)
    assert isinstance(make_object_store("local", root=tmp_path / "o"), LocalObjectStore)
    assert make_replica("none") is None and make_replica(None) is None
    assert isinstance(make_replica("postgres", dsn="postgresql://x@127.0.0.1/db"), PostgresReplica)
    with pytest.raises(ConfigError, match="cloudflare"):
        make_kv("redis")
    with pytest.raises(ConfigError, match="bad options"):
        make_object_store("local", folder=tmp_path)


def test_remote_error_text_carries_code_operation_and_hint() -> None:
    err = RemoteError("401 nope", operation="kv put", retryable=False, status=401, hint="check the api_token")
    assert str(err) == "remote_error: kv put: 401 nope (Try: check the api_token)"
    assert not err.retryable and err.status == 401
