"""verify.compare: every difference between local rows, replica rows and KV pointers, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync.kv import LocalKV, encode_pointer
from sync.replica import RECORD_FIELDS
from sync.verify import Difference, compare, read_pointers


def rec(vid: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    out.update(version_id=vid, user_id="u", project_id="p", status="deployed", row_version=2)
    out.update(created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:01+00:00")
    out.update(kw)
    return out


def test_identical_states_have_no_differences() -> None:
    ptr = {"u:p": {"latestVersionId": "a", "previewUrl": "x", "timestamp": 1}}
    local = [rec("a"), rec("b")]
    remote = [rec("b", created_at="2026-01-01T00:00:00.000000+00:00"), rec("a")]  # same instant, other spelling
    assert compare(local, remote, ptr, {"u:p": {**ptr["u:p"], "timestamp": 99}}) == []


def test_every_kind_of_difference_is_listed() -> None:
    local = [rec("a"), rec("b", status="failed", row_version=3), rec("c")]
    remote = [rec("a"), rec("b"), rec("z")]
    kv = {
        "u:p": {"latestVersionId": "a", "previewUrl": "x", "timestamp": 1},
        "u:stale": {"latestVersionId": "q", "previewUrl": "y", "timestamp": 1},
    }
    expected = {
        "u:p": {"latestVersionId": "b", "previewUrl": "x", "timestamp": 2},
        "u:new": {"latestVersionId": "c", "previewUrl": "z", "timestamp": 3},
    }
    diffs = compare(local, remote, kv, expected)
    assert diffs == [
        Difference("extra_in_replica", "z"),
        Difference("extra_pointer", "u:stale"),
        Difference("field_mismatch", "b", "row_version", 3, 2),
        Difference("field_mismatch", "b", "status", "failed", "deployed"),
        Difference("missing_in_replica", "c"),
        Difference("missing_pointer", "u:new"),
        Difference("pointer_mismatch", "u:p", "latestVersionId", "b", "a"),
    ]
    assert str(diffs[2]) == "field_mismatch b.row_version: local=3 remote=2"


def test_read_pointers_from_a_kv(tmp_path: Path) -> None:
    kv = LocalKV(tmp_path / "kv.db")
    kv.put("u:p", encode_pointer("a", "x", 1))
    kv.put("u:bad", b"garbage")
    got = read_pointers(kv, ["u:p", "u:bad", "u:none"])
    assert got == {"u:p": {"latestVersionId": "a", "previewUrl": "x", "timestamp": 1}, "u:bad": {"raw": "garbage"}}
    assert compare([], [], got, {"u:bad": {"latestVersionId": "b", "previewUrl": "x", "timestamp": 1}})[0].kind == (
        "extra_pointer"
    )
    kv.close()
