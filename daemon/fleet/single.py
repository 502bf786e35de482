"""A droplet alone ([fleet] enabled = false): every project is this droplet's, so it always admits, holds
nothing, and has no lease to lose."""

from __future__ import annotations

from typing import Any

from daemon.core.background import Job
from daemon.core.db import ProjectVersion
from daemon.core.errors import Conflict
from daemon.deployers.base import Deployer
from daemon.fleet.seam import FleetFigures
from sync.lease import Lease


class SingleDroplet:
    """The `Fleet` of one droplet: admission always passes and the project's stable address is the deployer's
    own alias, when it has one."""

    draining = False
    warming = False  # no fleet, no shared store cache to warm from
    previews_from_any_droplet = False
    catches_up = False

    def __init__(self, deployer: Deployer) -> None:
        self.deployer = deployer

    def admit(self, user_id: str, project_id: str) -> Lease | None:
        """Always admitted: no lease to take."""
        return None

    def accepted(self) -> None:
        """Nothing to push first: the sync loop replicates the row when a replica is configured."""

    def build_may_start(self, v: ProjectVersion) -> str | None:
        """Always: no other droplet can have taken the project."""
        return None

    def lapsed(self, user_id: str, project_id: str) -> str | None:
        """Never: there is no lease to lapse."""
        return None

    def lost_lease(self, user_id: str, project_id: str) -> str | None:
        """Never: there is no lease to lose."""
        return None

    def hold(self, user_id: str, project_id: str) -> None:
        """Nothing to keep."""

    def unhold(self, user_id: str, project_id: str) -> None:
        """Nothing was kept."""

    def recover(self) -> None:
        """Nothing to retake."""

    def drain(self) -> dict[str, Any]:
        """409 `not_in_fleet`: a droplet alone has nowhere to send its projects."""
        raise Conflict("this droplet is not in a fleet ([fleet] enabled = false)", code="not_in_fleet")

    def status(self) -> dict[str, Any]:
        """Fleet off."""
        return {"enabled": False}

    def live_alias_url(self, user_id: str, project_id: str) -> str | None:
        """The platform's alias of the project (Cloudflare Pages' live branch), None on the local deployer."""
        return self.deployer.alias_url(user_id, project_id) if self.deployer.supports_alias else None

    def live_elsewhere(self, user_id: str, project_id: str) -> str | None:
        """Never: no other droplet writes the project."""
        return None

    def projects(self) -> list[tuple[str, str]]:
        """No lease rows."""
        return []

    def lease_of(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """No lease rows."""
        return None

    def figures(self) -> FleetFigures:
        """All zero."""
        return FleetFigures()

    def jobs(self) -> list[Job]:
        """No lease keeper to run."""
        return []
