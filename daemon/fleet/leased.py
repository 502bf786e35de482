"""One droplet of a fleet: take a project's lease before writing to it, catch up from Postgres and S3 when it
comes from another droplet, refuse it when another live droplet holds it, drain."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from daemon.core import versions
from daemon.core.background import Job
from daemon.core.db import ACTIVE_STATUSES, AliasRetry, ProjectVersion, database
from daemon.core.errors import AppError, Conflict, Unavailable
from daemon.core.events import BuildDone, Events
from daemon.deployers.base import Deployer
from daemon.deployers.previewnames import alias_label, preview_url
from daemon.fleet import catchup
from daemon.fleet.catchup import Stores
from daemon.fleet.guards import ProjectGuards
from daemon.fleet.seam import FleetFigures
from daemon.fleet.warmstart import WarmStart
from sync.errors import SyncError
from sync.lease import Lease, LeaseHeld
from sync.leasekeeper import LeaseKeeper

log = logging.getLogger("previewd.fleet")


class LeasedFleet:
    """The `Fleet` of a droplet among others: per-project leases in Postgres kept by `keeper`, whose epochs fence
    every replicated row and pointer move; the droplet's per-project guards are its own."""

    previews_from_any_droplet = True
    catches_up = True

    def __init__(self, keeper: LeaseKeeper, stores: Stores, deployer: Deployer, events: Events, *,
                 preview_domain: str, previews_port: int, warm: WarmStart | None = None) -> None:
        """Take over `keeper`'s idle check (a project is idle when nothing is left to write for it here) and
        note each build's end as activity on its project. `warm`: this droplet's warm start, when the fleet shares
        a store cache (no build is admitted while it warms up)."""
        self.keeper = keeper
        self.warm = warm
        self.stores = stores
        self.deployer = deployer
        self.preview_domain = preview_domain
        self.previews_port = previews_port
        self.guards = ProjectGuards()
        keeper.is_idle = self.is_idle
        events.subscribe(BuildDone, self._build_done)

    @property
    def draining(self) -> bool:
        """Set by `drain`; kept on the keeper, whose heartbeat tells the other droplets."""
        return self.keeper.draining

    @property
    def warming(self) -> bool:
        """Filling the store from the fleet's cache: no build yet (until warm or `[fleet] warm_timeout_s`)."""
        return self.warm is not None and self.warm.warming

    # -- admission -----------------------------------------------------------------------------------------
    def admit(self, user_id: str, project_id: str) -> Lease | None:
        """Hold the project's lease (caught up when new to us).

        503 `draining` while this droplet drains, 409 `project_elsewhere` naming the droplet that holds it, 503
        `lease_unavailable` when Postgres cannot be asked.
        """
        keeper = self.keeper
        if keeper.draining:
            raise Unavailable(f"droplet {keeper.holder} is draining; send the request to another droplet",
                              code="draining", retry_after=1)
        if self.warming:
            raise Unavailable(f"droplet {keeper.holder} is warming its package store; send the request to another "
                              "droplet", code="warming", retry_after=2)
        with self.guards.catching_up((user_id, project_id)):
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
                self.hold(user_id, project_id)
                try:
                    self.catch_up(lease)
                except Exception:
                    keeper.release(lease)  # a half caught-up copy must not be written to
                    raise
                finally:
                    self.unhold(user_id, project_id)
        return lease

    def catch_up(self, lease: Lease) -> dict[str, int]:
        """Make the local copy of a newly leased project current (daemon/fleet/catchup.py); its duration is kept
        for `status` and /metrics."""
        started = time.monotonic()
        done = catchup.catch_up(self.stores, lease)
        self.keeper.catchups.append(time.monotonic() - started)
        del self.keeper.catchups[:-200]
        return done

    def accepted(self) -> None:
        """A fleet droplet answers for a new version only once its row is in Postgres (when Postgres answers):
        the client's 202 must survive this droplet dying before its sync loop runs."""
        try:
            self.stores.sync_loop.drain_now("replica")
        except Exception:
            log.warning("pushing the new row to Postgres failed; the sync loop retries it", exc_info=True)

    def build_may_start(self, v: ProjectVersion) -> str | None:
        """Before a queued build starts: None when it may, else why not (its project moved to another droplet)."""
        try:
            self.admit(v.user_id, v.project_id)
        except AppError as exc:
            return f"this droplet cannot build the project now: {exc.message}"
        return None

    def lost_lease(self, user_id: str, project_id: str) -> str | None:
        """Before a version goes live: None while this droplet still holds the project's lease (asked of
        Postgres), else the message its build fails with as `interrupted`."""
        keeper = self.keeper
        keeper.touch(user_id, project_id)
        if keeper.confirm(user_id, project_id) is not None:
            return None
        return (f"droplet {keeper.holder} lost the lease of project {user_id}/{project_id} (paused, partitioned or "
                f"stopped past {keeper.ttl_s:g}s); another droplet now writes it, so this build was interrupted")

    def lapsed(self, user_id: str, project_id: str) -> str | None:
        """Between build steps: None while the lease is held (a local check; Postgres is asked only when the local
        deadline passed, e.g. after a pause), else the message the build fails with as `interrupted`."""
        if self.keeper.holds(user_id, project_id) is not None:
            return None
        return self.lost_lease(user_id, project_id)

    def hold(self, user_id: str, project_id: str) -> None:
        """Work on the project continues after its build (history, recovery pack): keep the lease until
        `unhold`."""
        self.guards.hold((user_id, project_id))

    def unhold(self, user_id: str, project_id: str) -> None:
        """The work `hold` announced is done."""
        self.guards.unhold((user_id, project_id))
        self.keeper.touch(user_id, project_id)

    def is_idle(self, user_id: str, project_id: str) -> bool:
        """Nothing left to write for the project here: no build queued or running, no history work, nothing
        waiting to sync (the keeper releases an idle project's lease)."""
        if self.guards.holds.get((user_id, project_id)):
            return False
        with database.connection_context():
            if versions.in_flight(user_id, project_id) is not None:
                return False
            # a live alias still to move stays with this droplet, which knows what it last asked of the platform
            if AliasRetry.select().where((AliasRetry.user_id == user_id)
                                         & (AliasRetry.project_id == project_id)).exists():
                return False
        box = self.stores.outbox.outbox
        return box.pending("replica") == 0 and box.pending("objects") == 0 and box.pending("usage") == 0 \
            and box.pending("kv", versions.pointer_key(user_id, project_id)) == 0

    def _build_done(self, event: BuildDone) -> None:
        self.keeper.touch(event.version.user_id, event.version.project_id)

    def recover(self) -> None:
        """At start, before interrupted rows are failed: retake (same droplet id) the projects they belong to, so
        those updates carry this droplet's epoch; a project another droplet took meanwhile is its to clean up."""
        keys = {(v.user_id, v.project_id) for v in
                ProjectVersion.select(ProjectVersion.user_id, ProjectVersion.project_id)
                .where(ProjectVersion.status.in_(ACTIVE_STATUSES))}
        for u, p in sorted(keys):
            try:
                self.admit(u, p)
            except AppError as exc:
                log.info("not retaking %s/%s at start: %s", u, p, exc.message)

    # -- the droplet in its fleet ------------------------------------------------------------------------------
    def drain(self) -> dict[str, Any]:
        """Stop taking builds (503 `draining`); leases are released as their projects go idle."""
        self.keeper.draining = True
        return self.status()

    def status(self) -> dict[str, Any]:
        """`daemonctl fleet`: this droplet, the droplets seen, and every lease."""
        keeper = self.keeper
        out: dict[str, Any] = {"enabled": True, **keeper.stats(),
                               "catchUpMs": [round(s * 1000) for s in keeper.catchups[-10:]]}
        if self.warm is not None:
            out["warmStart"] = self.warm.status()
        try:
            out["droplets"] = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}
                               for d in keeper.store.droplets()]
            out["leases"] = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}
                             for d in keeper.store.leases()]
        except SyncError as exc:
            out["error"] = str(exc)
        return out

    def live_alias_url(self, user_id: str, project_id: str) -> str | None:
        """The project's stable address: on Cloudflare its Pages live branch alias (daemon/publish/livealias.py);
        on local-deployer droplets `<project>--<user>.<preview_domain>`, which any droplet serves. Both always
        serve the live version (rollback and undo/redo move it)."""
        if self.deployer.supports_alias:
            return self.deployer.alias_url(user_id, project_id)
        if not self.deployer.serves_previews:
            return None
        return preview_url(alias_label(user_id, project_id), self.preview_domain, self.previews_port)

    def live_elsewhere(self, user_id: str, project_id: str) -> str | None:
        """The fleet's live version of a project another droplet writes (its lease row); None while this droplet
        holds the project."""
        if self.keeper.holds(user_id, project_id) is not None:
            return None
        cur = self.keeper.store.current(user_id, project_id)
        return str(cur["live_version_id"]) if cur and cur.get("live_version_id") else None

    def projects(self) -> list[tuple[str, str]]:
        """Every (user, project) with a lease row in the fleet."""
        return [(str(r["user_id"]), str(r["project_id"])) for r in self.keeper.store.leases()]

    def lease_of(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The project's lease row, None when it never had one."""
        return self.keeper.store.current(user_id, project_id)

    def figures(self) -> FleetFigures:
        """The keeper's counters now."""
        k = self.keeper
        return FleetFigures(leases_held=len(k.held()), takeovers=k.takeovers, leases_lost=k.lost,
                            fencing_refusals=k.refusals, last_catch_up_s=k.catchups[-1] if k.catchups else 0.0)

    def jobs(self) -> list[Job]:
        """The lease keeper's renewer: stopped after the sync loop's final flush, releasing the held leases."""
        keeper = self.keeper

        def stop_keeper(_grace: float) -> None:
            keeper.stop()
            keeper.store.close()

        def alive() -> bool:
            thread = getattr(keeper, "_thread", None)
            return isinstance(thread, threading.Thread) and thread.is_alive()

        return [Job("fleet-leases", "own thread", f"every {max(0.2, keeper.ttl_s / 6):g} s (renewal)",
                    "stop, join 10 s, release held leases", start=keeper.start, stop=stop_keeper, alive=alive)]
