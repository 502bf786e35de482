"""Compare local version rows with the replica and the KV pointers, listing every difference."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.errors import InvalidRecord
from sync.kv.base import KV, decode_pointer
from sync.replica.base import RECORD_FIELDS, parse_time

_TIME_FIELDS = {"created_at", "updated_at", "archived_at", "preview_deleted_at"}


@dataclass(frozen=True)
class Difference:
    """One mismatch: ``kind`` is missing_in_replica, extra_in_replica, field_mismatch, missing_pointer,
    extra_pointer or pointer_mismatch; ``key`` is a version_id or a KV key."""

    kind: str
    key: str
    field: str | None = None
    local: Any = None
    remote: Any = None

    def __str__(self) -> str:
        if self.field is None:
            return f"{self.kind} {self.key}"
        return f"{self.kind} {self.key}.{self.field}: local={self.local!r} remote={self.remote!r}"


def _norm(field: str, value: Any) -> Any:
    """Compare times as instants, so ``Z`` and ``+00:00`` or microsecond formatting do not count."""
    if field in _TIME_FIELDS and value is not None:
        try:
            parsed: datetime = parse_time(value, field)
            return parsed
        except InvalidRecord:
            return value
    return value


def compare(
    local_rows: list[dict[str, Any]],
    replica_rows: list[dict[str, Any]],
    kv_pointers: dict[str, dict[str, Any]],
    expected_pointers: dict[str, dict[str, Any]],
) -> list[Difference]:
    """Every difference between local rows and replica rows (by version_id, field by field) and between the
    pointers found in KV and the ones the local state implies (by KV key). Sorted by kind, key and field."""
    diffs: list[Difference] = []
    local = {r["version_id"]: r for r in local_rows}
    remote = {r["version_id"]: r for r in replica_rows}
    for vid in local.keys() - remote.keys():
        diffs.append(Difference("missing_in_replica", vid))
    for vid in remote.keys() - local.keys():
        diffs.append(Difference("extra_in_replica", vid))
    for vid in local.keys() & remote.keys():
        for field in RECORD_FIELDS:
            a, b = local[vid].get(field), remote[vid].get(field)
            if _norm(field, a) != _norm(field, b):
                diffs.append(Difference("field_mismatch", vid, field, a, b))
    for key in expected_pointers.keys() - kv_pointers.keys():
        diffs.append(Difference("missing_pointer", key))
    for key in kv_pointers.keys() - expected_pointers.keys():
        diffs.append(Difference("extra_pointer", key))
    for key in expected_pointers.keys() & kv_pointers.keys():
        want, got = expected_pointers[key], kv_pointers[key]
        for field in sorted(set(want) | set(got)):
            if field == "timestamp":
                continue  # the time a pointer moved is not state worth flagging
            if want.get(field) != got.get(field):
                diffs.append(Difference("pointer_mismatch", key, field, want.get(field), got.get(field)))
    return sorted(diffs, key=lambda d: (d.kind, d.key, d.field or ""))


def read_pointers(kv: KV, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Fetch and decode the pointers stored under ``keys``; absent keys are left out, undecodable ones kept
    as ``{"raw": ...}`` so ``compare`` reports them as mismatches."""
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        raw = kv.get(key)
        if raw is None:
            continue
        try:
            out[key] = decode_pointer(raw)
        except ValueError:
            out[key] = {"raw": raw.decode("utf-8", "replace")}
    return out
