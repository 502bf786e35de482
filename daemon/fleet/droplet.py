"""One droplet of a fleet: take a project's lease before writing to it, catch up from Postgres and S3 when it
comes from another droplet, refuse it when another live droplet holds it, drain.

With ``[fleet]`` off every function here returns at once: a single droplet behaves exactly as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from daemon.core import versions
from daemon.core.db import ACTIVE_STATUSES, Project, ProjectVersion, database, utcnow
from daemon.core.errors import AppError, Conflict, Unavailable
from daemon.core.events import BuildDone
from daemon.deployers.previewnames import alias_label, preview_url
from daemon.fleet.packs import load_packs
from daemon.history import HistoryError, ProjectRepo, lock_for
from sync.errors import SyncError
from sync.lease import Lease, LeaseHeld

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.fleet")

class ProjectGuards:
    """The fleet's per-project state on one droplet: a catch-up lock per project being admitted, and the count of
    holds (work continuing after a build). Both maps keep only projects in use: a lock goes when its last user
    leaves, a hold count when it drops to zero."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}
        self.holds: dict[tuple[str, str], int] = {}

    @contextlib.contextmanager
    def catching_up(self, key: tuple[str, str]) -> Iterator[None]:
        """Hold the project's catch-up lock (one admission per project at a time)."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users > 1:
                    self._locks[key] = (lock, users - 1)
                else:
                    del self._locks[key]

    def hold(self, key: tuple[str, str]) -> None:
        with self._guard:
            self.holds[key] = self.holds.get(key, 0) + 1

    def unhold(self, key: tuple[str, str]) -> None:
        with self._guard:
            left = self.holds.get(key, 0) - 1
            if left > 0:
                self.holds[key] = left
            else:
                self.holds.pop(key, None)

    def size(self) -> tuple[int, int]:
        """(catch-up locks, held projects): the bound, for tests."""
        with self._guard:
            return len(self._locks), len(self.holds)


def guards(rt: Runtime) -> ProjectGuards:
    """The droplet's fleet guards (owned by its runtime)."""
    return rt.owned.get("fleet", ProjectGuards)


def admit(rt: Runtime, user_id: str, project_id: str) -> Lease | None:
    """The fleet's admission check before any write to a project: hold its lease (caught up when new to us).

    503 `draining` while this droplet drains, 409 `project_elsewhere` naming the droplet that holds it, 503
    `lease_unavailable` when Postgres cannot be asked. None with [fleet] off.
    """
    keeper = rt.fleet
    if keeper is None:
        return None
    if keeper.draining:
        raise Unavailable(f"droplet {keeper.holder} is draining; send the request to another droplet",
                          code="draining", retry_after=1)
    with guards(rt).catching_up((user_id, project_id)):
        try:
            lease, new = keeper.claim(user_id, project_id)
        except LeaseHeld as exc:
            raise Conflict(f"project {user_id}/{project_id} is being written by droplet {exc.holder}; send the "
                           f"request there (or retry after its lease lapses)", code="project_elsewhere",
                           holder=exc.holder,
                           leaseExpiresAt=exc.expires_at.isoformat() if exc.expires_at else None) from None
        except SyncError as exc:
            raise Unavailable(f"cannot take the project's lease: {exc}", code="lease_unavailable",
                              retry_after=2) from exc
        if new:
            # Busy while catching up: the renewer keeps (and renews) the lease instead of releasing an "idle"
            # project minutes before its first write (issue 24).
            hold(rt, user_id, project_id)
            try:
                catch_up(rt, lease)
            except Exception:
                keeper.release(lease)  # a half caught-up copy must not be written to
                raise
            finally:
                unhold(rt, user_id, project_id)
    return lease


def catch_up(rt: Runtime, lease: Lease) -> dict[str, int]:
    """Make the local copy of a newly leased project current: rows from Postgres, history from the packs in
    S3 (restored when absent or older), its live version and undo/redo stacks from the lease row; versions an
    earlier holder left unfinished are failed as `interrupted`."""
    started = time.monotonic()
    u, p = lease.user_id, lease.project_id
    assert rt.replica is not None
    try:
        remote = rt.replica.fetch_versions(u, p)
    except Exception as exc:
        raise Unavailable(f"cannot read the project's rows from Postgres: {exc}", code="catch_up_failed",
                          retry_after=2) from exc
    changed = _merge_rows(remote, takeover=lease.takeover)
    restored = _catch_up_history(rt, u, p, remote)
    orphans = 0
    if lease.takeover:
        for rec in remote:
            if rec["status"] in ACTIVE_STATUSES:
                versions.update(rt.outbox, rec["version_id"], status="failed", failure_reason="interrupted",
                                failure_message=f"droplet {lease.previous} lost the lease of this project while "
                                                f"this version was {rec['status']}; droplet {lease.holder} took "
                                                "over")
                orphans += 1
    _set_head(lease)
    took = time.monotonic() - started
    assert rt.fleet is not None
    rt.fleet.catchups.append(took)
    del rt.fleet.catchups[:-200]
    log.info("caught up %s/%s at epoch %d in %.0f ms: %d rows changed, history %s, %d orphans interrupted",
             u, p, lease.epoch, took * 1000, changed, "restored" if restored else "current", orphans)
    rt.sync_nudge()
    return {"rows": changed, "restored": int(restored), "orphans": orphans}


def _merge_rows(remote: list[dict[str, object]], *, takeover: bool) -> int:
    """Copy rows the local database lacks or has older; on a takeover Postgres wins over any local row."""
    changed = 0
    with database.atomic("IMMEDIATE"):
        for rec in remote:
            row = versions.row_from_record(rec)
            local = ProjectVersion.get_or_none(ProjectVersion.version_id == rec["version_id"])
            if local is None:
                ProjectVersion.create(**row)
                changed += 1
            elif int(local.row_version) < int(row["row_version"]) or (
                    takeover and int(local.row_version) != int(row["row_version"])):
                ProjectVersion.update(**{k: v for k, v in row.items() if k != "version_id"}).where(
                    ProjectVersion.version_id == rec["version_id"]).execute()
                changed += 1
    return changed


def _catch_up_history(rt: Runtime, user_id: str, project_id: str, remote: list[dict[str, object]]) -> bool:
    """Restore the git history from the packs when the local repository is absent or lacks a deployed version."""
    path = rt.layout.repo_path(user_id, project_id)
    wanted = [str(r["version_id"]) for r in remote if r["status"] == "deployed"]
    if not wanted:
        return False
    if path.exists():
        repo = ProjectRepo.open_or_init(path)
        if all(repo.has_version(v) for v in wanted):
            return False
    try:
        packs = load_packs(rt, user_id, project_id)
    except AppError as exc:
        if exc.code == "no_packs":
            return False
        raise
    stale = path.with_name(f".{path.name}.stale-{os.getpid()}-{int(time.time() * 1000)}")
    with lock_for(path).writing():
        if path.exists():
            os.rename(path, stale)
        try:
            ProjectRepo.restore(path, packs)
        except HistoryError as exc:
            if stale.exists():
                shutil.rmtree(path, ignore_errors=True)
                os.rename(stale, path)
            raise Unavailable(exc.message or exc.code, code=exc.code) from exc
    shutil.rmtree(stale, ignore_errors=True)
    return True


def _set_head(lease: Lease) -> None:
    """The project's live version and undo/redo stacks as the fleet last recorded them (when known here)."""
    if not lease.live_version_id:
        return
    live = ProjectVersion.get_or_none(ProjectVersion.version_id == lease.live_version_id)
    if live is None or live.status != "deployed":
        return
    with database.atomic("IMMEDIATE"):
        proj, _ = Project.get_or_create(user_id=lease.user_id, project_id=lease.project_id)
        proj.live_version_id = lease.live_version_id
        proj.undo_stack = json.dumps(list(lease.undo))
        proj.redo_stack = json.dumps(list(lease.redo))
        proj.updated_at = utcnow()
        proj.save()


def accepted(rt: Runtime) -> None:
    """A fleet droplet answers for a new version only once its row is in Postgres (when Postgres answers): the
    client's 202 must survive this droplet dying before its sync loop runs."""
    if rt.fleet is None:
        return
    try:
        rt.sync_loop.drain_now("replica")
    except Exception:
        log.warning("pushing the new row to Postgres failed; the sync loop retries it", exc_info=True)


def live_alias_url(rt: Runtime, user_id: str, project_id: str) -> str | None:
    """The project's stable address: on Cloudflare its Pages live branch alias (any mode, daemon/publish/livealias.py);
    on a fleet of local-deployer droplets `<project>--<user>.<preview_domain>`. Both always serve the live version
    (rollback and undo/redo move it); None otherwise."""
    if rt.deployer.supports_alias:
        return rt.deployer.alias_url(user_id, project_id)
    if rt.fleet is None or not rt.deployer.serves_previews:
        return None
    return preview_url(alias_label(user_id, project_id), rt.cfg.server.preview_domain, rt.cfg.previews_port)


def build_may_start(rt: Runtime, v: ProjectVersion) -> str | None:
    """Before a queued build starts: None when it may, else why not (its project moved to another droplet)."""
    if rt.fleet is None:
        return None
    try:
        admit(rt, v.user_id, v.project_id)
    except AppError as exc:
        return f"this droplet cannot build the project now: {exc.message}"
    return None


def lost_lease(rt: Runtime, user_id: str, project_id: str) -> str | None:
    """Before a version goes live: None while this droplet still holds the project's lease (asked of Postgres),
    else the message its build fails with as `interrupted`."""
    keeper = rt.fleet
    if keeper is None:
        return None
    keeper.touch(user_id, project_id)
    if keeper.confirm(user_id, project_id) is not None:
        return None
    return (f"droplet {keeper.holder} lost the lease of project {user_id}/{project_id} (paused, partitioned or "
            f"stopped past {keeper.ttl_s:g}s); another droplet now writes it, so this build was interrupted")


def hold(rt: Runtime, user_id: str, project_id: str) -> None:
    """Work on the project continues after its build (history, recovery pack): keep the lease until `unhold`."""
    if rt.fleet is None:
        return
    guards(rt).hold((user_id, project_id))


def unhold(rt: Runtime, user_id: str, project_id: str) -> None:
    """The work `hold` announced is done."""
    if rt.fleet is None:
        return
    guards(rt).unhold((user_id, project_id))
    rt.fleet.touch(user_id, project_id)


def lapsed(rt: Runtime, user_id: str, project_id: str) -> str | None:
    """Between build steps: None while the lease is held (a local check; Postgres is asked only when the local
    deadline passed, e.g. after a pause), else the message the build fails with as `interrupted`."""
    keeper = rt.fleet
    if keeper is None or keeper.holds(user_id, project_id) is not None:
        return None
    return lost_lease(rt, user_id, project_id)


def is_idle(rt: Runtime, user_id: str, project_id: str) -> bool:
    """Nothing left to write for the project here: no build queued or running, no history work, nothing waiting
    to sync."""
    if guards(rt).holds.get((user_id, project_id)):
        return False
    with database.connection_context():
        if versions.in_flight(user_id, project_id) is not None:
            return False
    box = rt.outbox.outbox
    return box.pending("replica") == 0 and box.pending("objects") == 0 \
        and box.pending("kv", versions.pointer_key(user_id, project_id)) == 0


def recover(rt: Runtime) -> None:
    """At start, before interrupted rows are failed: retake (same droplet id) the projects they belong to, so
    those updates carry this droplet's epoch; a project another droplet took meanwhile is its to clean up."""
    if rt.fleet is None:
        return
    keys = {(v.user_id, v.project_id) for v in ProjectVersion.select(ProjectVersion.user_id, ProjectVersion.project_id)
            .where(ProjectVersion.status.in_(ACTIVE_STATUSES))}
    for u, p in sorted(keys):
        try:
            admit(rt, u, p)
        except AppError as exc:
            log.info("not retaking %s/%s at start: %s", u, p, exc.message)


def install(rt: Runtime) -> None:
    """Give the keeper the daemon's idle check; start it (a no-op with [fleet] off)."""
    if rt.fleet is None:
        return
    rt.fleet.is_idle = lambda u, p: is_idle(rt, u, p)
    keeper = rt.fleet
    rt.events.subscribe(BuildDone, lambda e: keeper.touch(e.version.user_id, e.version.project_id))


def drain(rt: Runtime) -> dict[str, object]:
    """Stop taking builds (503 `draining`); leases are released as their projects go idle."""
    if rt.fleet is None:
        raise Conflict("this droplet is not in a fleet ([fleet] enabled = false)", code="not_in_fleet")
    rt.fleet.draining = True
    return status(rt)


def verify_project(rt: Runtime, user_id: str, project_id: str) -> dict[str, object]:
    """One project across the shared stores, whichever droplet asks: every Postgres row final (or in flight
    under a live lease), the lease row's live version deployed, each deployed version's artifact and pack in
    the bucket, and the KV pointer equal to Postgres' live version."""
    if rt.replica is None or rt.remote_objects is None:
        raise Conflict("verifying a project across stores needs [replica] postgres and [objects] s3",
                       code="not_in_fleet")
    problems: list[str] = []
    rows = rt.replica.fetch_versions(user_id, project_id)
    lease = rt.fleet.store.current(user_id, project_id) if rt.fleet is not None else None
    by_id = {r["version_id"]: r for r in rows}
    for r in rows:
        if r["status"] not in ("deployed", "failed") and not (lease and lease["live_now"]):
            problems.append(f"version {r['version_id']} is {r['status']} and no droplet holds the project")
    live = str(lease["live_version_id"]) if lease and lease.get("live_version_id") else None
    if live is not None and by_id.get(live, {}).get("status") != "deployed":
        problems.append(f"live version {live} is {by_id.get(live, {}).get('status', 'missing')} in Postgres")
    keys = set(rt.remote_objects.list(rt.layout.project_prefix(user_id, project_id)))
    packs = {k.rsplit("_to_", 1)[-1].removesuffix(".pack.zip") for k in keys if "/packs/" in k}
    for r in rows:
        if r["status"] != "deployed":
            continue
        vid = str(r["version_id"])
        art = rt.layout.artifact_key(user_id, project_id, vid)
        target = str(r.get("rollback_of") or "")
        if art not in keys and not (target and rt.layout.artifact_key(user_id, project_id, target) in keys):
            problems.append(f"deployed version {vid} has no artifact in the bucket")
        if vid not in packs:
            problems.append(f"deployed version {vid} has no recovery pack in the bucket")
    try:
        raw = rt.kv.get(versions.pointer_key(user_id, project_id))
        pointer = json.loads(raw).get("latestVersionId") if raw else None
    except (SyncError, ValueError, AttributeError) as exc:
        problems.append(f"KV pointer unreadable: {exc}")
        pointer = None
    if live is not None and pointer != live:
        problems.append(f"KV pointer {pointer} differs from Postgres' live version {live}")
    return {"userId": user_id, "projectId": project_id, "rows": len(rows), "live": live, "kvPointer": pointer,
            "holder": lease["holder"] if lease and lease["live_now"] else None, "problems": problems,
            "count": len(problems)}


def status(rt: Runtime) -> dict[str, object]:
    """`daemonctl fleet`: this droplet, the droplets seen, and every lease."""
    if rt.fleet is None:
        return {"enabled": False}
    keeper = rt.fleet
    out: dict[str, object] = {"enabled": True, **keeper.stats(), "catchUpMs": [round(s * 1000) for s in
                                                                                keeper.catchups[-10:]]}
    try:
        out["droplets"] = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}
                           for d in keeper.store.droplets()]
        out["leases"] = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}
                         for d in keeper.store.leases()]
    except SyncError as exc:
        out["error"] = str(exc)
    return out
