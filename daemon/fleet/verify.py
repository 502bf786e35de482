"""One project checked across the fleet's shared stores (Postgres, the bucket, KV), from any droplet."""

from __future__ import annotations

import json

from daemon.core import versions
from daemon.core.errors import Conflict
from daemon.core.layout import Layout
from daemon.fleet.seam import Fleet
from sync.errors import SyncError
from sync.kv import KV
from sync.objects import ObjectStore
from sync.replica import Replica


def verify_project(fleet: Fleet, replica: Replica | None, bucket: ObjectStore | None, kv: KV, layout: Layout,
                   user_id: str, project_id: str) -> dict[str, object]:
    """One project across the shared stores, whichever droplet asks: every Postgres row final (or in flight
    under a live lease), the lease row's live version deployed, each deployed version's artifact and pack in
    the bucket, and the KV pointer equal to Postgres' live version. 409 `not_in_fleet` without Postgres and S3."""
    if replica is None or bucket is None:
        raise Conflict("verifying a project across stores needs [replica] postgres and [objects] s3",
                       code="not_in_fleet")
    problems: list[str] = []
    rows = replica.fetch_versions(user_id, project_id)
    lease = fleet.lease_of(user_id, project_id)
    by_id = {r["version_id"]: r for r in rows}
    for r in rows:
        if r["status"] not in ("deployed", "failed") and not (lease and lease["live_now"]):
            problems.append(f"version {r['version_id']} is {r['status']} and no droplet holds the project")
    live = str(lease["live_version_id"]) if lease and lease.get("live_version_id") else None
    if live is not None and by_id.get(live, {}).get("status") != "deployed":
        problems.append(f"live version {live} is {by_id.get(live, {}).get('status', 'missing')} in Postgres")
    keys = set(bucket.list(layout.project_prefix(user_id, project_id)))
    packs = {k.rsplit("_to_", 1)[-1].removesuffix(".pack.zip") for k in keys if "/packs/" in k}
    for r in rows:
        if r["status"] != "deployed":
            continue
        vid = str(r["version_id"])
        art = layout.artifact_key(user_id, project_id, vid)
        target = str(r.get("rollback_of") or "")
        if art not in keys and not (target and layout.artifact_key(user_id, project_id, target) in keys):
            problems.append(f"deployed version {vid} has no artifact in the bucket")
        if vid not in packs:
            problems.append(f"deployed version {vid} has no recovery pack in the bucket")
    try:
        raw = kv.get(versions.pointer_key(user_id, project_id))
        pointer = json.loads(raw).get("latestVersionId") if raw else None
    except (SyncError, ValueError, AttributeError) as exc:
        problems.append(f"KV pointer unreadable: {exc}")
        pointer = None
    if live is not None and pointer != live:
        problems.append(f"KV pointer {pointer} differs from Postgres' live version {live}")
    return {"userId": user_id, "projectId": project_id, "rows": len(rows), "live": live, "kvPointer": pointer,
            "holder": lease["holder"] if lease and lease["live_now"] else None, "problems": problems,
            "count": len(problems)}
