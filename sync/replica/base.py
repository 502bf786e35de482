"""The Replica seam: the Protocol for the shared version history, and the version record's shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sync.errors import InvalidRecord

STATUSES = ("queued", "building", "deploying", "deployed", "failed")

# Every key of the record the daemon hands over, in the replica table's column order.
RECORD_FIELDS = (
    "version_id",
    "user_id",
    "project_id",
    "prompt",
    "parent_version_id",
    "preview_url",
    "artifact_url",
    "framework",
    "build_duration_ms",
    "output_size_bytes",
    "claude_json",
    "status",
    "needs_rebuild",
    "base_snapshot_id",
    "cf_deployment_id",
    "node_version",
    "pnpm_version",
    "created_at",
    "failure_reason",
    "pinned",
    "rollback_of",
    "archived_at",
    "updated_at",
    "row_version",
    "checks",
    "timings",
    "target_package",
    "preview_deleted_at",
    "repair_of",
    "repair_attempt",
    "repair",
    "repair_request",
)
_TEXT = {
    "prompt",
    "parent_version_id",
    "preview_url",
    "artifact_url",
    "framework",
    "base_snapshot_id",
    "cf_deployment_id",
    "node_version",
    "pnpm_version",
    "failure_reason",
    "rollback_of",
    "target_package",
    "repair_of",
}
_INTS = {"build_duration_ms", "output_size_bytes", "repair_attempt"}
_BOOLS = {"needs_rebuild", "pinned"}
_TIMES = {"created_at", "archived_at", "updated_at", "preview_deleted_at"}
OPTIONAL_TIMES = ("archived_at", "preview_deleted_at")
_JSON_OBJECTS = ("claude_json", "checks", "timings", "repair", "repair_request")
# Newer than some outbox rows: absent means None.
ADDED_FIELDS = ("checks", "timings", "target_package", "preview_deleted_at", "repair_of", "repair_attempt", "repair",
                "repair_request")
_REQUIRED_TEXT = {"version_id", "user_id", "project_id"}


class Replica(Protocol):
    """A shared copy of version rows, keyed by ``version_id``.

    Contract: ``upsert_versions`` is idempotent and never lets a record with a lower or equal ``row_version``
    overwrite a newer one; it validates every record first (``InvalidRecord``, a ValueError, before any
    write). ``delete_versions`` of unknown ids succeeds. Reads return records with exactly
    ``RECORD_FIELDS`` (times as ISO-8601 UTC strings). A lost or refused connection raises
    ``sync.errors.RemoteError(retryable=True)`` and the next call reconnects on its own.
    """

    name: str

    def ensure_schema(self) -> None:
        """Create or migrate the table (idempotent, safe to race)."""
        ...

    def upsert_versions(self, records: list[dict[str, Any]]) -> list[str] | None:
        """Insert or update the records in one transaction; a fenced store returns the ids it refused as stale."""
        ...

    def delete_versions(self, version_ids: list[str]) -> None:
        """Remove the rows with these ids."""
        ...

    def fetch_versions(self, user_id: str, project_id: str) -> list[dict[str, Any]]:
        """One project's records, oldest first."""
        ...

    def get_version(self, version_id: str) -> dict[str, Any] | None:
        """One record, or None."""
        ...

    def all_versions(self) -> list[dict[str, Any]]:
        """Every record (for verification against the local rows)."""
        ...

    def deleted_previews(self, version_ids: list[str]) -> list[str]:
        """Which of these versions' previews the retention deleted (``preview_deleted_at`` set): a droplet asks
        about the previews it holds and drops those."""
        ...

    def close(self) -> None:
        """Drop the connection."""
        ...


def parse_time(value: object, field: str) -> datetime:
    """Parse an ISO-8601 timestamp into an aware UTC datetime (naive input is taken as UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidRecord(f"{field} is not an ISO-8601 time: {value!r}") from exc
    else:
        raise InvalidRecord(f"{field} must be an ISO-8601 string, got {type(value).__name__}")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_time(value: datetime | None) -> str | None:
    """Render a datetime as ISO-8601 UTC (``...+00:00``), None stays None."""
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


def validate_record(record: object) -> dict[str, Any]:
    """Check a version record's keys and value kinds; return it (fields added since it was written set to None)
    or raise InvalidRecord."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"a version record must be a dict, got {type(record).__name__}")
    for name in ADDED_FIELDS:  # an outbox row written before the field existed (an upgrade) still flows
        record.setdefault(name, None)
    keys = set(record) - {"epoch"}  # a fleet's lease epoch rides along (sync/lease.py); absent = unfenced
    missing = [f for f in RECORD_FIELDS if f not in keys]
    extra = sorted(keys - set(RECORD_FIELDS))
    vid = record.get("version_id")
    if missing or extra:
        raise InvalidRecord(f"record {vid!r}: missing fields {missing}, unknown fields {extra}")
    for field in _REQUIRED_TEXT:
        if not isinstance(record[field], str) or not record[field]:
            raise InvalidRecord(f"record {vid!r}: {field} must be a non-empty string")
    for field in _TEXT:
        if record[field] is not None and not isinstance(record[field], str):
            raise InvalidRecord(f"record {vid!r}: {field} must be a string or None")
    for field in _INTS:
        value = record[field]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRecord(f"record {vid!r}: {field} must be an integer or None")
    for field in _BOOLS:
        if not isinstance(record[field], bool):
            raise InvalidRecord(f"record {vid!r}: {field} must be a bool")
    if record["status"] not in STATUSES:
        raise InvalidRecord(f"record {vid!r}: status {record['status']!r} is not one of {list(STATUSES)}")
    for field in _JSON_OBJECTS:
        if record[field] is not None and not isinstance(record[field], dict):
            raise InvalidRecord(f"record {vid!r}: {field} must be a dict or None")
    epoch = record.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise InvalidRecord(f"record {vid!r}: epoch must be a non-negative integer")
    rv = record["row_version"]
    if isinstance(rv, bool) or not isinstance(rv, int) or rv < 0:
        raise InvalidRecord(f"record {vid!r}: row_version must be a non-negative integer")
    for field in ("created_at", "updated_at", *OPTIONAL_TIMES):
        if field in OPTIONAL_TIMES and record[field] is None:
            continue
        try:
            parse_time(record[field], field)
        except InvalidRecord as exc:
            raise InvalidRecord(f"record {vid!r}: {exc.message}") from exc
    return record
