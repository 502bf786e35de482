"""The Deployer seam: what every deployment backend (local, cloudflare) promises the pipeline, and what it can do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

DeployState = Literal["deployed", "pending", "failed"]


class DeployError(Exception):
    """A deployment could not be made or queried; the version fails with ``deploy_failed``."""

    code = "deploy_failed"
    # What a caller may do next, whatever the backend: ask again later (``retryable``), after at least
    # ``retry_after_s`` when the platform said so (its rate limit); ``status`` is the platform's HTTP status, if any.
    retryable = True
    status: int | None = None
    retry_after_s: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class DeployRequest:
    """One built output directory to publish for one version."""

    out_dir: Path
    user_id: str
    project_id: str
    version_id: str
    message: str  # the prompt, trimmed; becomes the commit message on Pages


@dataclass(frozen=True)
class Deployment:
    """Where a deployment lives and whether the platform has confirmed it."""

    deployment_id: str
    url: str
    state: DeployState
    detail: str = ""


class Deployer(Protocol):
    """Publishes build output. Errors: every failure raises DeployError with a readable message.

    ``deploy`` returns as soon as the platform has accepted the upload: ``state`` is ``deployed`` when the
    platform confirmed it synchronously (local), ``pending`` when confirmation comes later (webhook or
    ``status`` polling). ``status`` asks the platform again; ``delete`` removes a deployment and succeeds
    when it is already gone.
    """

    name: str  # for logs and status reports only: callers ask the capabilities below, never the name

    # Capabilities: what the backend does, so callers need not know which one it is.
    serves_previews: bool
    """The daemon serves each deployment itself from its previews folder, under an id that follows from the version
    alone: cleanup derives it, fleet droplets fetch and sweep their copies."""
    supports_alias: bool
    """Each project has a platform branch whose alias always holds its live version (daemon/publish/livealias.py)."""
    counts_pages_quota: bool
    """Every deploy creates a platform deployment counted against the plan's ``pages_deployments`` quota."""
    records_deployment_id: bool
    """A deployment id names a platform object worth storing on the version (``cf_deployment_id``)."""

    def deploy(self, req: DeployRequest, log: Callable[[str], None]) -> Deployment: ...

    def status(self, deployment_id: str) -> Deployment: ...

    def delete(self, deployment_id: str) -> None: ...

    def alias_url(self, user_id: str, project_id: str) -> str | None:
        """The platform alias that always serves the project's live version (``supports_alias``), else None."""
        ...
