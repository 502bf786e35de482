"""Fixtures for the Cloudflare deployer tests: a running fake Pages API and a small built site."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.deployers.base import DeployRequest
from daemon.deployers.cloudflare.deployer import CloudflareDeployer
from tests.integration.cloudflare.cf_support import PROJECT_ID, VERSION_ID, FakePagesApi, LogLines


@pytest.fixture
def cf_api() -> Iterator[FakePagesApi]:
    """A fake Pages API on a loopback port, stopped after the test."""
    with FakePagesApi() as api:
        yield api


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A Vite-like dist directory with a _redirects file (wrangler uploads it separately)."""
    out = tmp_path / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "index.html").write_text("<!doctype html><h1>todo</h1><script src='/assets/index-a1.js'></script>")
    (out / "assets" / "index-a1.js").write_text("console.log('todo')")
    (out / "assets" / "index-b2.css").write_text("body{margin:0}")
    (out / "_redirects").write_text("/* /index.html 200\n")
    return out


@pytest.fixture
def request_for(site: Path) -> Callable[..., DeployRequest]:
    """Build a DeployRequest for the site, overriding fields as needed."""

    def make(**overrides: Any) -> DeployRequest:
        fields: dict[str, Any] = {
            "out_dir": site,
            "user_id": "u_1",
            "project_id": PROJECT_ID,
            "version_id": VERSION_ID,
            "message": "Build a todo app\nwith dark mode",
        }
        fields.update(overrides)
        return DeployRequest(**fields)

    return make


@pytest.fixture
def make_deployer(cf_api: FakePagesApi) -> Iterator[Callable[..., CloudflareDeployer]]:
    """A factory for deployers pointed at the fake API; all are closed after the test."""
    made: list[CloudflareDeployer] = []

    def make(**kwargs: Any) -> CloudflareDeployer:
        kwargs.setdefault("timeout_s", 120)
        deployer = CloudflareDeployer(
            cf_api.account_id, cf_api.token, cf_api.project, api_base=cf_api.base_url, **kwargs
        )
        made.append(deployer)
        return deployer

    yield make
    for deployer in made:
        deployer.close()


@pytest.fixture
def log_lines() -> LogLines:
    """An empty log sink."""
    return LogLines()
