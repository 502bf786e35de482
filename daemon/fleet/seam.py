"""The fleet seam: what the daemon asks of the droplets it runs with, whether it runs alone or in a fleet.

Two implementations sit side by side: `SingleDroplet` (daemon/fleet/single.py: alone, it always admits and holds
nothing) and `LeasedFleet` (daemon/fleet/leased.py: per-project leases in Postgres, catch-up on a takeover). The
runtime picks one from `[fleet] enabled`; every caller asks the seam and never which one it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from daemon.core.background import Job
from daemon.core.db import ProjectVersion
from sync.lease import Lease


@dataclass(frozen=True)
class FleetFigures:
    """This droplet's fleet counters, for /metrics (all zero alone)."""

    leases_held: int = 0
    takeovers: int = 0
    leases_lost: int = 0
    fencing_refusals: int = 0
    last_catch_up_s: float = 0.0


class Fleet(Protocol):
    """The droplets a daemon runs with. Errors are `AppError`s with their HTTP status: `admit` raises 503
    `draining`, 409 `project_elsewhere` or 503 `lease_unavailable` / `catch_up_failed`; `drain` 409 `not_in_fleet`.
    The checks that return a message (`build_may_start`, `lapsed`, `lost_lease`) return None while this droplet
    may write the project, else why not (the build then fails as `interrupted`)."""

    @property
    def draining(self) -> bool:
        """This droplet takes no new builds (its health check answers 503)."""
        ...

    @property
    def warming(self) -> bool:
        """This droplet fills its package store from the fleet's cache and takes no build yet (503 `warming`,
        its health check too)."""
        ...

    @property
    def previews_from_any_droplet(self) -> bool:
        """This droplet serves previews built on any droplet (fetched from the bucket) and the live alias hosts,
        and drops the previews the fleet's retention deleted."""
        ...

    @property
    def catches_up(self) -> bool:
        """`admit` brings a project new to this droplet up to date from the shared stores (rows and history)."""
        ...

    def admit(self, user_id: str, project_id: str) -> Lease | None:
        """Before any write to the project: hold its lease (caught up when new here); None alone."""
        ...

    def accepted(self) -> None:
        """A new version's row was written: in a fleet it reaches Postgres before the client hears of it."""
        ...

    def build_may_start(self, v: ProjectVersion) -> str | None:
        """Before a queued build starts: None when it may, else why not (its project moved)."""
        ...

    def lapsed(self, user_id: str, project_id: str) -> str | None:
        """Between build steps (cheap, local): None while the project's lease is held."""
        ...

    def lost_lease(self, user_id: str, project_id: str) -> str | None:
        """Before a version goes live (asks Postgres): None while this droplet still holds the lease."""
        ...

    def hold(self, user_id: str, project_id: str) -> None:
        """Work on the project continues after its build (history, recovery pack): keep it until `unhold`."""
        ...

    def unhold(self, user_id: str, project_id: str) -> None:
        """The work `hold` announced is done."""
        ...

    def recover(self) -> None:
        """At start, before interrupted rows are failed: retake the projects they belong to."""
        ...

    def drain(self) -> dict[str, Any]:
        """Stop taking builds (503 `draining`); leases go as their projects go idle. The status after."""
        ...

    def status(self) -> dict[str, Any]:
        """`daemonctl fleet`: this droplet, the droplets seen and every lease (`enabled: false` alone)."""
        ...

    def live_alias_url(self, user_id: str, project_id: str) -> str | None:
        """The project's stable address that always serves its live version, when there is one."""
        ...

    def live_elsewhere(self, user_id: str, project_id: str) -> str | None:
        """The project's live version as the fleet recorded it, when another droplet writes the project; None
        when this droplet writes it (or runs alone): then its own rows say."""
        ...

    def projects(self) -> list[tuple[str, str]]:
        """Every (user, project) the fleet has a lease row for ([] alone)."""
        ...

    def lease_of(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The project's lease row (holder, live_now, live_version_id, ...), None when it has none or alone."""
        ...

    def figures(self) -> FleetFigures:
        """This droplet's fleet counters now."""
        ...

    def jobs(self) -> list[Job]:
        """The background jobs the fleet runs (the lease keeper), for the runtime to declare."""
        ...
