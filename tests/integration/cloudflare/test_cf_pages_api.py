"""The Pages API client and CloudflareDeployer.status/delete against the loopback fake API."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from daemon.deployers.base import DeployError
from daemon.deployers.cloudflare.deployer import CloudflareDeployer
from daemon.deployers.cloudflare.pages_api import (
    PagesApi,
    PagesApiRejected,
    PagesApiUnavailable,
    PagesNotFound,
    RateLimited,
)
from tests.integration.cloudflare.cf_support import FakePagesApi

MakeDeployer = Callable[..., CloudflareDeployer]


@pytest.fixture
def pages(cf_api: FakePagesApi) -> Iterator[PagesApi]:
    client = PagesApi(cf_api.account_id, cf_api.token, cf_api.project, api_base=cf_api.base_url)
    yield client
    client.close()


@pytest.mark.parametrize(
    ("stage", "state"),
    [
        (("queued", "active"), "pending"),
        (("initialize", "idle"), "pending"),
        (("deploy", "active"), "pending"),
        (("deploy", "success"), "deployed"),
        (("build", "failure"), "failed"),
        (("deploy", "failure"), "failed"),
        (("deploy", "canceled"), "failed"),
    ],
)
def test_status_maps_latest_stage(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, stage: tuple[str, str], state: str
) -> None:
    dep_id = cf_api.add_deployment(stage=stage)
    dep = make_deployer().status(dep_id)
    assert dep.state == state
    assert dep.deployment_id == dep_id
    assert dep.url == f"https://{dep_id[:8]}.{cf_api.project}.pages.dev"
    assert dep.detail == f"{stage[0]}:{stage[1]}"


def test_status_moves_from_pending_to_failed(cf_api: FakePagesApi, make_deployer: MakeDeployer) -> None:
    dep_id = cf_api.add_deployment(stage=("queued", "active"))
    deployer = make_deployer()
    assert deployer.status(dep_id).state == "pending"
    cf_api.set_stage(dep_id, "deploy", "failure")
    assert deployer.status(dep_id).state == "failed"


def test_status_of_unknown_deployment_is_a_not_found_error(make_deployer: MakeDeployer) -> None:
    with pytest.raises(PagesNotFound) as err:
        make_deployer().status("00000000-0000-4000-8000-000000000000")
    assert isinstance(err.value, DeployError)
    assert err.value.retryable is False
    assert err.value.cf_code == 8000009


def test_delete_removes_and_tolerates_missing(cf_api: FakePagesApi, make_deployer: MakeDeployer) -> None:
    cf_api.add_deployment(branch="p-one", commit_hash="older")
    dep_id = cf_api.add_deployment(branch="p-one", commit_hash="newer")  # the branch head: has an alias
    deployer = make_deployer()
    deployer.delete(dep_id)
    assert dep_id not in cf_api.deployments
    deletes = [path for method, path, _auth in cf_api.requests if method == "DELETE"]
    assert deletes == [f"/client/v4/accounts/{cf_api.account_id}/pages/projects/{cf_api.project}/deployments/{dep_id}"]
    deployer.delete(dep_id)  # 404 now: already gone is fine


def test_delete_without_force_refuses_aliased_deployment(cf_api: FakePagesApi, pages: PagesApi) -> None:
    dep_id = cf_api.add_deployment(branch="p-two")
    with pytest.raises(PagesApiRejected) as err:
        pages.delete_deployment(dep_id, force=False)
    assert err.value.cf_code == 8000035
    assert err.value.status == 400
    pages.delete_deployment(dep_id, force=True)
    assert dep_id not in cf_api.deployments


def test_delete_of_live_production_deployment_fails(cf_api: FakePagesApi, make_deployer: MakeDeployer) -> None:
    dep_id = cf_api.add_deployment(branch=cf_api.production_branch)
    with pytest.raises(DeployError) as err:
        make_deployer().delete(dep_id)
    assert "8000034" in err.value.message
    assert dep_id in cf_api.deployments


def test_rate_limit_raises_with_retry_after(cf_api: FakePagesApi, pages: PagesApi) -> None:
    dep_id = cf_api.add_deployment()
    cf_api.rate_limit(retry_after=7, times=1)
    with pytest.raises(RateLimited) as err:
        pages.get_deployment(dep_id)
    assert err.value.retry_after_s == 7
    assert err.value.retryable is True
    assert err.value.status == 429
    assert err.value.code == "cf_rate_limited"
    assert pages.get_deployment(dep_id)["id"] == dep_id  # the window passed


def test_rate_limit_reaches_status_callers(cf_api: FakePagesApi, make_deployer: MakeDeployer) -> None:
    dep_id = cf_api.add_deployment()
    cf_api.rate_limit(retry_after=120)
    with pytest.raises(RateLimited) as err:
        make_deployer().status(dep_id)
    assert err.value.retry_after_s == 120


def test_server_error_is_retryable(cf_api: FakePagesApi, pages: PagesApi) -> None:
    cf_api.fail_5xx(status=502, times=2)
    for _ in range(2):
        with pytest.raises(PagesApiUnavailable) as err:
            pages.list_deployments()
        assert err.value.retryable is True
        assert err.value.status == 502
        assert not isinstance(err.value, RateLimited)
    assert pages.list_deployments() == []


def test_network_error_is_retryable(cf_api: FakePagesApi) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        client = PagesApi(cf_api.account_id, cf_api.token, cf_api.project, api_base=f"http://127.0.0.1:{port}/v4")
        with pytest.raises(PagesApiUnavailable) as err:
            client.get_deployment("x")
        client.close()
    assert err.value.retryable is True
    assert cf_api.token not in err.value.message


def test_bad_token_is_rejected_not_retried(cf_api: FakePagesApi) -> None:
    client = PagesApi(cf_api.account_id, "wrong-token", cf_api.project, api_base=cf_api.base_url)
    with pytest.raises(PagesApiRejected) as err:
        client.list_deployments()
    client.close()
    assert err.value.status == 403
    assert err.value.retryable is False
    assert "Authentication error" in err.value.message
    assert "wrong-token" not in err.value.message


def test_list_deployments_pages_and_filters(cf_api: FakePagesApi, pages: PagesApi) -> None:
    ids = [cf_api.add_deployment(commit_hash=f"v{i}", created_on=f"2026-01-0{i + 1}T00:00:00Z") for i in range(5)]
    prod = cf_api.add_deployment(branch=cf_api.production_branch, created_on="2025-12-31T00:00:00Z")
    seen: list[str] = []
    page = 1
    while batch := pages.list_deployments(page=page, per_page=2, env="preview"):
        seen += [d["id"] for d in batch]
        page += 1
    assert seen == list(reversed(ids))  # newest first
    assert page == 4
    assert [d["id"] for d in pages.list_deployments(env="production")] == [prod]
    assert len(pages.list_deployments(per_page=10)) == 6
