"""No project takes another's Pages live alias (issue 23): a branch alias is at most 28 characters, so the branch
spells a digest, and a digest collision is refused for the project that has no Pages deployment yet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.core import versions
from daemon.deployers.base import DeployError, DeployRequest
from daemon.deployers.cloudflare.branches import branch_conflict, checked_branch, live_branch
from daemon.runtime import Runtime
from tests.support import make_config

# Two real users whose branches of one project collide (found by a birthday search over `collider<hex>`).
PROJECT, OWNER, NEWCOMER = "shared-project-name", "colliderd490", "collider235db"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    cfg = make_config(tmp_path, '[deploy]\nbackend = "cloudflare"\ncf_account_id = "acc"\ncf_project_name = "pp"\n',
                      env={"CLOUDFLARE_API_TOKEN": "cf-test-token"}, sandbox={"allow_unconfined": True})
    runtime = Runtime(cfg)
    try:
        yield runtime
    finally:
        runtime.close()


def _version(user: str, *, uploaded: bool) -> None:
    v = versions.create(None, user_id=user, project_id=PROJECT, prompt="p", kind="new", parent_version_id=None)
    if uploaded:
        versions.go_live(None, v.version_id, 60, build_duration_ms=1, preview_url="https://x.pp.pages.dev/",
                         cf_deployment_id="dep-" + v.version_id.lower())


def test_the_pair_really_collides() -> None:
    assert live_branch(OWNER, PROJECT) == live_branch(NEWCOMER, PROJECT)


def test_a_newcomer_is_refused_the_owners_branch_and_alias(rt: Runtime, tmp_path: Path) -> None:
    _version(OWNER, uploaded=True)
    _version(NEWCOMER, uploaded=False)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DeployError, match="another project's"):
        rt.deployer.deploy(DeployRequest(out_dir=out, user_id=NEWCOMER, project_id=PROJECT, version_id="01J",
                                         message="m"), lambda _line: None)
    assert rt.fleet.live_alias_url(NEWCOMER, PROJECT) is None
    assert checked_branch(DeployRequest(out_dir=out, user_id=OWNER, project_id=PROJECT, version_id="01J",
                                        message="m")) == live_branch(OWNER, PROJECT)
    assert rt.fleet.live_alias_url(OWNER, PROJECT) == f"https://{live_branch(OWNER, PROJECT)}.pp.pages.dev/"
    # a project with no colliding neighbour is untouched
    assert branch_conflict("alice", "site") is None and rt.fleet.live_alias_url("alice", "site")


def test_a_fleet_neighbour_known_only_by_its_lease_row_counts(rt: Runtime) -> None:
    _version(NEWCOMER, uploaded=False)
    assert branch_conflict(NEWCOMER, PROJECT) is None
    assert branch_conflict(NEWCOMER, PROJECT, lambda: [(OWNER, PROJECT)]) == (OWNER, PROJECT)
