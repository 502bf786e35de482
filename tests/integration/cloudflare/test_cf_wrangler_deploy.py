"""CloudflareDeployer.deploy through a wrangler process (the real one when PREVIEWD_REAL_WRANGLER is set)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from daemon.deployers.base import DeployError, DeployRequest
from daemon.deployers.cloudflare.branches import live_branch
from daemon.deployers.cloudflare.deployer import CloudflareDeployer
from tests.integration.cloudflare.cf_support import (
    PROJECT_ID,
    VERSION_ID,
    FakePagesApi,
    LogLines,
    fake_mode,
    real_or_fake_wrangler,
)

MakeDeployer = Callable[..., CloudflareDeployer]
MakeRequest = Callable[..., DeployRequest]


def _assert_no_token(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text


def test_deploy_returns_pending_with_id_and_url(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    cf_api.stage_plan = [("deploy", "success")]  # the real wrangler then stops polling after one GET
    deployer = make_deployer(wrangler=real_or_fake_wrangler())
    dep = deployer.deploy(request_for(message="Build a todo app\nwith   dark mode " + "x" * 300), log_lines)

    assert dep.state == "pending"
    server = cf_api.deployments[dep.deployment_id]
    assert dep.url == f"https://{dep.deployment_id[:8]}.{cf_api.project}.pages.dev"
    assert server.branch == live_branch("u_1", PROJECT_ID)
    assert server.environment == "preview"
    assert server.commit_hash == VERSION_ID
    assert "\n" not in server.commit_message
    assert server.commit_message.startswith("Build a todo app with dark mode x")
    assert len(server.commit_message) <= 200
    assert set(server.manifest) == {"/index.html", "/assets/index-a1.js", "/assets/index-b2.css"}
    assert f"{live_branch('u_1', PROJECT_ID)}.{cf_api.project}.pages.dev" in dep.detail
    # The token reached the API (wrangler authenticated) but never the log.
    assert any(auth == f"Bearer {cf_api.token}" for _m, _p, auth in cf_api.requests)
    assert any("Deployment complete" in line for line in log_lines)
    _assert_no_token(cf_api.token, *log_lines, repr(dep))
    assert cf_api.unknown == []


def test_deploy_then_status_follows_the_stages(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    cf_api.stage_plan = [("deploy", "active")]
    deployer = make_deployer(wrangler=real_or_fake_wrangler())
    dep = deployer.deploy(request_for(), log_lines)
    assert deployer.status(dep.deployment_id).state == "pending"
    cf_api.set_stage(dep.deployment_id, "deploy", "success")
    confirmed = deployer.status(dep.deployment_id)
    assert (confirmed.state, confirmed.url, confirmed.detail) == ("deployed", dep.url, "deploy:success")


def test_unknown_project_fails_with_cloudflare_reason(
    cf_api: FakePagesApi, request_for: MakeRequest, log_lines: LogLines
) -> None:
    deployer = CloudflareDeployer(
        cf_api.account_id,
        cf_api.token,
        "no-such-project",
        wrangler=real_or_fake_wrangler(),
        api_base=cf_api.base_url,
        timeout_s=120,
    )
    try:
        with pytest.raises(DeployError) as err:
            deployer.deploy(request_for(), log_lines)
    finally:
        deployer.close()
    assert err.value.code == "deploy_failed"
    assert "wrangler exited with code 1" in err.value.message
    assert "Project not found" in err.value.message
    assert "8000007" in err.value.message
    _assert_no_token(cf_api.token, err.value.message, *log_lines)


def test_wrangler_sees_only_its_own_environment(
    cf_api: FakePagesApi,
    make_deployer: MakeDeployer,
    request_for: MakeRequest,
    log_lines: LogLines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREVIEWD_HMAC_SECRET", "daemon-secret-never-for-wrangler")
    make_deployer(wrangler=fake_mode("env")).deploy(request_for(), log_lines)
    env_lines = [line for line in log_lines if line.startswith("ENV ")]
    assert len(env_lines) == 1
    names = set(json.loads(env_lines[0][4:]))
    needed = {
        "PATH",
        "HOME",
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_API_BASE_URL",
        "WRANGLER_OUTPUT_FILE_PATH",
        "WRANGLER_SEND_METRICS",
        "CI",
    }
    assert needed <= names
    # FAKE_WRANGLER_MODE comes from the test's `env` wrapper; LC_CTYPE is Python's own C-locale coercion.
    assert names - needed <= {"FAKE_WRANGLER_MODE", "LC_CTYPE"}


def test_old_wrangler_without_output_file_falls_back_to_printed_url(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    cf_api.add_deployment(commit_hash="someone-else")
    dep = make_deployer(wrangler=fake_mode("old")).deploy(request_for(), log_lines)
    assert dep.state == "pending"
    assert cf_api.deployments[dep.deployment_id].commit_hash == VERSION_ID
    assert dep.url == f"https://{dep.deployment_id[:8]}.{cf_api.project}.pages.dev"
    assert dep.detail == f"alias https://{live_branch('u_1', PROJECT_ID)}.{cf_api.project}.pages.dev"


def test_command_failed_entry_becomes_deploy_error(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    with pytest.raises(DeployError) as err:
        make_deployer(wrangler=fake_mode("fail")).deploy(request_for(), log_lines)
    assert "An unknown error has occurred" in err.value.message
    assert "[code 8000000]" in err.value.message
    assert cf_api.deployments == {}


def test_token_is_redacted_from_failure_and_log(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    with pytest.raises(DeployError) as err:
        make_deployer(wrangler=fake_mode("leak_fail")).deploy(request_for(), log_lines)
    assert "[redacted]" in err.value.message
    _assert_no_token(cf_api.token, err.value.message, str(err.value), *log_lines)

    ok_log = LogLines()
    make_deployer(wrangler=fake_mode("leak")).deploy(request_for(), ok_log)
    assert any("[redacted]" in line for line in ok_log)
    _assert_no_token(cf_api.token, *ok_log)


def test_missing_wrangler_binary(
    make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines, tmp_path: Path
) -> None:
    with pytest.raises(DeployError) as err:
        make_deployer(wrangler=(str(tmp_path / "no-wrangler-here"),)).deploy(request_for(), log_lines)
    assert "cannot start wrangler" in err.value.message


def test_missing_output_dir(
    make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines, tmp_path: Path
) -> None:
    with pytest.raises(DeployError) as err:
        make_deployer().deploy(request_for(out_dir=tmp_path / "dist-missing"), log_lines)
    assert "is not a directory" in err.value.message


def test_hanging_wrangler_is_killed_with_its_children(
    cf_api: FakePagesApi,
    make_deployer: MakeDeployer,
    request_for: MakeRequest,
    log_lines: LogLines,
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "pids"
    deployer = make_deployer(wrangler=fake_mode("hang", f"FAKE_WRANGLER_PIDFILE={pidfile}"), timeout_s=5)
    with pytest.raises(DeployError) as err:
        deployer.deploy(request_for(), log_lines)
    assert "timed out" in err.value.message
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    for pid in pids:
        # Reparented orphans may linger as zombies until init reaps them; they run nothing.
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_children_left_behind_by_wrangler_are_killed(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    deployer = make_deployer(wrangler=fake_mode("orphan", f"FAKE_WRANGLER_PIDFILE={pidfile}"))
    dep = deployer.deploy(request_for(), log_lines)
    assert dep.deployment_id in cf_api.deployments
    (pid,) = (int(p) for p in pidfile.read_text().split())
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_prompt_that_looks_like_a_flag_stays_the_message(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    cf_api.stage_plan = [("deploy", "success")]
    deployer = make_deployer(wrangler=real_or_fake_wrangler(), branch_for=lambda req: "team/" + req.user_id)
    dep = deployer.deploy(request_for(message="--help -v a list app = nice"), log_lines)
    server = cf_api.deployments[dep.deployment_id]
    assert server.commit_message == "--help -v a list app = nice"
    assert server.branch == "team/u_1"


def test_invalid_branch_from_branch_for_is_refused(
    cf_api: FakePagesApi, make_deployer: MakeDeployer, request_for: MakeRequest, log_lines: LogLines
) -> None:
    deployer = make_deployer(branch_for=lambda req: "--project-name=evil")
    with pytest.raises(DeployError) as err:
        deployer.deploy(request_for(), log_lines)
    assert "invalid Pages branch name" in err.value.message
    assert cf_api.requests == []


def test_relative_output_dir_is_resolved_before_wrangler_changes_directory(
    cf_api: FakePagesApi,
    make_deployer: MakeDeployer,
    request_for: MakeRequest,
    log_lines: LogLines,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(site.parent)
    dep = make_deployer(wrangler=fake_mode("ok")).deploy(request_for(out_dir=Path(site.name)), log_lines)
    assert "/index.html" in cf_api.deployments[dep.deployment_id].manifest
