"""The Deployer Protocol's contract as a test mixin; each backend's test module subclasses it.

A subclass provides fixtures `deployer` (the backend under test), `site` (a built output dir) and `log`
(a callable collecting log lines).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.deployers.base import Deployer, DeployError
from tests.integration.deployers.deployer_support import request_for

LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DeployerContract:
    """What every Deployer promises the pipeline."""

    def test_deploy_returns_a_dns_label_and_a_url(self, deployer: Deployer, site: Path, log) -> None:
        dep = deployer.deploy(request_for(site), log)
        assert LABEL.match(dep.deployment_id)
        assert dep.url.startswith(("http://", "https://"))
        assert dep.state in ("deployed", "pending")

    def test_status_knows_a_fresh_deployment(self, deployer: Deployer, site: Path, log) -> None:
        dep = deployer.deploy(request_for(site), log)
        assert deployer.status(dep.deployment_id).state in ("deployed", "pending")

    def test_two_versions_get_two_deployments(self, deployer: Deployer, site: Path, log) -> None:
        first = deployer.deploy(request_for(site, version_id="01JDQ8Z5V7K3M9QX2R4T6W8Y0A"), log)
        second = deployer.deploy(request_for(site, version_id="01JDQ8Z5V7K3M9QX2R4T6W8Y0B"), log)
        assert first.deployment_id != second.deployment_id

    def test_delete_removes_the_deployment_and_succeeds_twice(self, deployer: Deployer, site: Path, log) -> None:
        dep = deployer.deploy(request_for(site), log)
        assert deployer.status(dep.deployment_id).state in ("deployed", "pending")
        deployer.delete(dep.deployment_id)
        assert _gone(deployer, dep.deployment_id)
        deployer.delete(dep.deployment_id)  # already gone: still no error
        assert _gone(deployer, dep.deployment_id)

    def test_missing_output_dir_raises_deploy_error(self, deployer: Deployer, tmp_path: Path, log) -> None:
        with pytest.raises(DeployError):
            deployer.deploy(request_for(tmp_path / "no-such-dist"), log)


def _gone(deployer: Deployer, deployment_id: str) -> bool:
    """The platform no longer has the deployment: status says `failed`, or asking raises DeployError (a 404)."""
    try:
        return deployer.status(deployment_id).state == "failed"
    except DeployError:
        return True
