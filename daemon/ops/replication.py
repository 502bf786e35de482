"""Operator views of replication: flush the outbox now, verify local state against Postgres and KV, remote reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.db import Project, ProjectVersion
from sync.verify import compare, read_pointers

if TYPE_CHECKING:
    from sync.kv.base import KV
    from sync.loop import SyncLoop
    from sync.replica.base import Replica


def flush(sync_loop: SyncLoop, timeout_s: float = 30.0) -> dict[str, Any]:
    """Drain every destination now, ignoring back-off; report what was sent and what still fails."""
    stats = sync_loop.flush(timeout_s)
    return {"sent": stats.sent, "errors": stats.errors, "dead": stats.dead, "backlog": sync_loop.outbox.backlog()}


def verify(replica: Replica | None, kv: KV) -> dict[str, Any]:
    """Every difference between the local rows, the Postgres rows (`replica`; None without one) and the KV
    pointers."""
    local = [versions.to_record(v) for v in ProjectVersion.select()]
    # Without a replica there is nothing to compare the rows against; pointers are still checked.
    remote = replica.all_versions() if replica is not None else local
    expected: dict[str, dict[str, Any]] = {}
    for proj in Project.select():
        live = versions.live_version(proj.user_id, proj.project_id)
        if live is not None:
            expected[versions.pointer_key(proj.user_id, proj.project_id)] = versions.pointer_value(live)
    found = read_pointers(kv, expected.keys())
    diffs = compare(local, remote, found, expected)
    return {"differences": [str(d) for d in diffs], "count": len(diffs), "rows": len(local),
            "replicaRows": len(remote) if replica is not None else None, "pointers": len(expected)}


def remote_history(replica: Replica | None, user_id: str, project_id: str) -> list[dict[str, Any]]:
    """History from Postgres for a project this droplet does not hold (newest first), else []."""
    if replica is None:
        return []
    rows = replica.fetch_versions(user_id, project_id)
    return [versions.version_json(r) for r in reversed(rows)]


def remote_version(replica: Replica | None, version_id: str) -> dict[str, Any] | None:
    """One version from Postgres, or None."""
    if replica is None:
        return None
    rec = replica.get_version(version_id)
    return versions.version_json(rec) if rec else None
