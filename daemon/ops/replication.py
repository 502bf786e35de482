"""Operator views of replication: flush the outbox now, verify local state against Postgres and KV, remote reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.db import Project, ProjectVersion
from sync.verify import compare, read_pointers

if TYPE_CHECKING:
    from daemon.runtime import Runtime


def flush(rt: Runtime, timeout_s: float = 30.0) -> dict[str, Any]:
    """Drain every destination now, ignoring back-off; report what was sent and what still fails."""
    stats = rt.sync_loop.flush(timeout_s)
    return {"sent": stats.sent, "errors": stats.errors, "dead": stats.dead, "backlog": rt.sync_loop.outbox.backlog()}


def verify(rt: Runtime) -> dict[str, Any]:
    """Every difference between the local rows, the Postgres rows and the KV pointers."""
    local = [versions.to_record(v) for v in ProjectVersion.select()]
    # Without a replica there is nothing to compare the rows against; pointers are still checked.
    remote = rt.replica.all_versions() if rt.replica is not None else local
    expected: dict[str, dict[str, Any]] = {}
    for proj in Project.select():
        live = versions.live_version(proj.user_id, proj.project_id)
        if live is not None:
            expected[versions.pointer_key(proj.user_id, proj.project_id)] = versions.pointer_value(live)
    found = read_pointers(rt.kv, expected.keys())
    diffs = compare(local, remote, found, expected)
    return {"differences": [str(d) for d in diffs], "count": len(diffs), "rows": len(local),
            "replicaRows": len(remote) if rt.replica is not None else None, "pointers": len(expected)}


def remote_history(rt: Runtime, user_id: str, project_id: str) -> list[dict[str, Any]]:
    """History from Postgres for a project this droplet does not hold (newest first), else []."""
    if rt.replica is None:
        return []
    rows = rt.replica.fetch_versions(user_id, project_id)
    return [versions.version_json(r) for r in reversed(rows)]


def remote_version(rt: Runtime, version_id: str) -> dict[str, Any] | None:
    """One version from Postgres, or None."""
    if rt.replica is None:
        return None
    rec = rt.replica.get_version(version_id)
    return versions.version_json(rec) if rec else None
