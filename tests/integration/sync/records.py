"""Version records shaped exactly like the daemon's, for the sync integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def record(n: int, status: str = "queued", row_version: int = 1, **overrides: Any) -> dict[str, Any]:
    """Version number ``n`` of project u1/p1 with every field the daemon sends."""
    rec: dict[str, Any] = {
        "version_id": f"01JV{n:022d}",
        "user_id": "u1",
        "project_id": "p1",
        "prompt": f"make app {n}",
        "parent_version_id": f"01JV{n - 1:022d}" if n > 0 else None,
        "preview_url": None,
        "artifact_url": None,
        "framework": "vite",
        "build_duration_ms": None,
        "output_size_bytes": None,
        "claude_json": None,
        "status": status,
        "needs_rebuild": False,
        "base_snapshot_id": None,
        "cf_deployment_id": None,
        "node_version": "20.11.0",
        "pnpm_version": "9.1.0",
        "created_at": (BASE + timedelta(seconds=n)).isoformat(),
        "failure_reason": None,
        "pinned": False,
        "rollback_of": None,
        "archived_at": None,
        "updated_at": (BASE + timedelta(seconds=n, milliseconds=row_version)).isoformat(),
        "row_version": row_version,
        "checks": None,
        "timings": None,
        "target_package": None,
        "preview_deleted_at": None,
        "repair_of": None,
        "repair_attempt": None,
        "repair": None,
        "repair_request": None,
    }
    rec.update(overrides)
    return rec


def lifecycle(n: int) -> list[dict[str, Any]]:
    """The record's successive states through one build: queued, building, deploying, then deployed or failed."""
    final = (
        {"status": "failed", "failure_reason": "build_failed"}
        if n % 5 == 4
        else {
            "status": "deployed",
            "preview_url": f"http://d{n}.localhost/",
            "build_duration_ms": 1000 + n,
            "output_size_bytes": 4096,
            "claude_json": {"result": f"ok {n}", "usage": {"input_tokens": n}},
            "checks": {"typecheck": {"status": "pass", "errors": 0, "warnings": 0, "durationMs": n,
                                     "diagnostics": []}},
            "timings": {"install": n, "bundle": 2 * n},
            "target_package": "apps/web" if n % 2 else None,
        }
    )
    return [
        record(n, "queued", 1),
        record(n, "building", 2),
        record(n, "deploying", 3),
        record(n, row_version=4, **final),
    ]
