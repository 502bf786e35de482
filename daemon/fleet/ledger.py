"""Where admission counts a user's month: this droplet's meter (alone), or the fleet's in Postgres.

`LocalLedger` is the single droplet's check over `state.db` (daemon/core/quotas.py), unchanged. `FleetLedger`
asks Postgres, where every droplet's meter rows meet: one transaction locks the user's month, counts it, and
inserts the new build's meter row (its reservation), so droplets admitting the same user at once admit exactly
what the plan has left. The runtime picks one from `[fleet] enabled`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from daemon.core import quotas
from daemon.core.config import Config, PlanConfig
from daemon.core.errors import Unavailable
from sync.errors import SyncError

log = logging.getLogger("previewd.fleet")


class UsageStore(Protocol):
    """The fleet's meters and alias redeploys in Postgres (sync.replica.usage.PostgresUsage); every call raises
    a SyncError (RemoteError) when Postgres cannot be asked."""

    def reserve(self, meter: dict[str, Any], decide: Callable[[dict[str, Any]], None], *, pages: bool = True,
                concurrency: bool = True) -> None:
        """Lock the user's month, let `decide` see its figures (it raises to refuse), insert the meter row;
        `pages`/`concurrency` False leave those figures out."""
        ...

    def unreserve(self, version_id: str) -> None:
        """Delete a reservation whose version was never created."""
        ...

    def meters_of(self, user_id: str, project_id: str) -> list[dict[str, Any]]:
        """A project's meter rows."""
        ...

    def begin_redeploy(self, rec: dict[str, Any]) -> bool:
        """Record a redeploy about to be made under `rec["epoch"]`; False when that epoch is stale."""
        ...

    def end_redeploy(self, redeploy_id: str, *, deployment_id: str | None, failed: str | None = None) -> None:
        """Record its outcome."""
        ...

    def redeploys_of(self, user_id: str, project_id: str) -> list[dict[str, Any]]:
        """A project's redeploys, oldest first."""
        ...

    def redeploy_deleted(self, deployment_ids: list[str]) -> None:
        """Mark deleted deployments."""
        ...

    def close(self) -> None:
        """Drop the connection."""
        ...


class QuotaLedger(Protocol):
    """Admission's quota check. `check` runs inside the admission's local transaction, before the version row is
    written; it raises 429 `quota_exceeded` (or 503 `quota_unavailable`) and returns True when it reserved the
    build elsewhere, which `unreserve` takes back when the local transaction then fails."""

    def check(self, cfg: Config, plan_name: str | None, plan: PlanConfig | None, meter: dict[str, Any], *,
              counts_pages: bool) -> bool:
        """Refuse one more build of `meter`'s user, or admit it (True: reserved remotely)."""
        ...

    def unreserve(self, version_id: str) -> None:
        """The reserved version was never created: give its reservation back (best effort)."""
        ...

    def begin_redeploy(self, rec: dict[str, Any]) -> bool:
        """A live alias redeploy is about to be asked of the platform (daemon/publish/livealias.py): False when a
        newer lease holder has the project (do not make it); 503 `redeploy_unrecorded` when it cannot be
        recorded (retry later)."""
        ...

    def end_redeploy(self, redeploy_id: str, *, deployment_id: str | None, failed: str | None = None) -> None:
        """Its outcome (best effort: unrecorded, it stays counted as made)."""
        ...

    def redeploys_deleted(self, deployment_ids: list[str]) -> None:
        """The cleanup deleted these redeploys' deployments (best effort)."""
        ...

    def close(self) -> None:
        """Drop any connection it holds."""
        ...


class LocalLedger:
    """A droplet alone: the month summed from its own `state.db`, nothing reserved elsewhere."""

    def check(self, cfg: Config, plan_name: str | None, plan: PlanConfig | None, meter: dict[str, Any], *,
              counts_pages: bool) -> bool:
        """The local check (daemon/core/quotas.py `check`)."""
        quotas.check(cfg, plan_name, plan, meter["user_id"], meter["project_id"], counts_pages=counts_pages)
        return False

    def unreserve(self, version_id: str) -> None:
        """Nothing was reserved."""

    def begin_redeploy(self, rec: dict[str, Any]) -> bool:
        """Alone, the local row is the record."""
        return True

    def end_redeploy(self, redeploy_id: str, *, deployment_id: str | None, failed: str | None = None) -> None:
        """Alone, the local row is the record."""

    def redeploys_deleted(self, deployment_ids: list[str]) -> None:
        """Alone, the local rows are the record."""

    def close(self) -> None:
        """Nothing held."""


class FleetLedger:
    """A fleet droplet: the month as Postgres has it from every droplet (own connection, never the sync loop's).

    Postgres unreachable: 503 `quota_unavailable` (fail closed), or with `[fleet] quotas_fail_open` the local
    check, so this droplet's users can still build (each droplet's meter alone then bounds them).
    """

    def __init__(self, store: UsageStore, *, fail_open: bool = False) -> None:
        self.store = store
        self.fail_open = fail_open
        self.fallbacks = 0  # admissions decided locally because Postgres could not be asked

    def check(self, cfg: Config, plan_name: str | None, plan: PlanConfig | None, meter: dict[str, Any], *,
              counts_pages: bool) -> bool:
        """Count the month in Postgres and reserve the build's meter row there, in one transaction."""
        limits = quotas.limits_of(plan)
        if not limits:
            return False  # nothing to enforce: the meter row reaches Postgres through the outbox
        user_id = meter["user_id"]
        # Storage is a gauge of this droplet's object store (recounted nightly): read before the round trip.
        stored = quotas.storage_bytes(user_id) if "storage_bytes" in limits else 0

        def decide(fig: dict[str, Any]) -> None:
            u = quotas.Usage(builds=int(fig.get("builds") or 0), unfinished=int(fig.get("unfinished") or 0),
                             build_cpu_seconds=float(fig.get("cpu_seconds") or 0.0),
                             pages_deployments=int(fig.get("pages_deployments") or 0), storage_bytes=stored,
                             concurrent_projects=int(fig.get("concurrent_projects") or 0))
            quotas.judge(plan_name, plan, u, counts_pages=counts_pages)

        try:
            self.store.reserve(meter, decide, pages=counts_pages and "pages_deployments" in limits,
                               concurrency="concurrent_projects" in limits)
        except SyncError as exc:
            if not self.fail_open:
                raise Unavailable(f"cannot check the fleet's quotas: Postgres is unreachable ({exc}); retry shortly",
                                  code="quota_unavailable", retry_after=5) from exc
            self.fallbacks += 1
            log.warning("fleet quotas: Postgres unreachable (%s); admitting %s on this droplet's meter "
                        "([fleet] quotas_fail_open)", exc, user_id)
            quotas.check(cfg, plan_name, plan, user_id, meter["project_id"], counts_pages=counts_pages)
            return False
        return True

    def unreserve(self, version_id: str) -> None:
        """Delete the reserved meter row; a failure leaves one build counted that never ran (logged)."""
        try:
            self.store.unreserve(version_id)
        except SyncError:
            log.warning("fleet quotas: could not take back the reservation of %s; it counts as one build",
                        version_id, exc_info=True)

    def close(self) -> None:
        """Drop the Postgres connection."""
        self.store.close()

    def begin_redeploy(self, rec: dict[str, Any]) -> bool:
        """Recorded in Postgres under the lease epoch before the platform is asked (a takeover reads it)."""
        try:
            return self.store.begin_redeploy(rec)
        except SyncError as exc:
            raise Unavailable(f"cannot record the live alias redeploy in Postgres: {exc}",
                              code="redeploy_unrecorded", retry_after=5) from exc

    def end_redeploy(self, redeploy_id: str, *, deployment_id: str | None, failed: str | None = None) -> None:
        """The outcome; unrecorded, the row stays `pending` and counts as made (never made twice)."""
        try:
            self.store.end_redeploy(redeploy_id, deployment_id=deployment_id, failed=failed)
        except SyncError:
            log.warning("fleet: outcome of alias redeploy %s not recorded in Postgres", redeploy_id, exc_info=True)

    def redeploys_deleted(self, deployment_ids: list[str]) -> None:
        """Mark them in Postgres, so a droplet taking the project over does not delete them again."""
        try:
            self.store.redeploy_deleted(deployment_ids)
        except SyncError:
            log.warning("fleet: deleted alias redeploys not marked in Postgres", exc_info=True)
