"""The Deployer seam: what every deployment backend (local, cloudflare) promises the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

DeployState = Literal["deployed", "pending", "failed"]


class DeployError(Exception):
    """A deployment could not be made or queried; the version fails with ``deploy_failed``."""

    code = "deploy_failed"

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

    name: str

    def deploy(self, req: DeployRequest, log: Callable[[str], None]) -> Deployment: ...

    def status(self, deployment_id: str) -> Deployment: ...

    def delete(self, deployment_id: str) -> None: ...
