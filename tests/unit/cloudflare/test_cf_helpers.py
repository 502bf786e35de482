"""Pure helpers of the cloudflare deployer: branch and message shaping, stage mapping, retry-after, redaction."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from daemon.deployers.cloudflare.branches import live_branch
from daemon.deployers.cloudflare.deployer import CloudflareDeployer, _failure_message, commit_message
from daemon.deployers.cloudflare.pages_api import DEFAULT_RETRY_AFTER_S, deployment_state, parse_retry_after, redact


@pytest.mark.parametrize(
    ("user_id", "project_id", "head"),
    [
        ("u_1", "01JB8ZJ0AB1CD2EF3GH4JK5MN6", "01jb8zj0ab1cd2ef3gh"),
        ("u", "My_Project.Name!!", "my-project-name-u"),
        ("_", "---", "p"),
        ("u" * 64, "x" * 60, "x" * 19),
    ],
)
def test_live_branch_is_dns_safe_and_names_user_and_project(user_id: str, project_id: str, head: str) -> None:
    result = live_branch(user_id, project_id)
    assert re.fullmatch(head + r"-[0-9a-f]{8}", result)
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", result)
    assert len(result) <= 28  # Pages cuts branch aliases at 28: the alias host is the branch itself
    assert live_branch(user_id, project_id) == result  # stable: the alias never changes


def test_live_branch_differs_per_user_and_when_slugs_collide() -> None:
    assert live_branch("alice", "site") != live_branch("bob", "site")
    assert live_branch("u", "a-b") != live_branch("b-u", "a")  # same slug "a-b-u"
    assert live_branch("u", "App") != live_branch("u", "app")
    long = "p" * 40
    assert live_branch("user-one", long) != live_branch("user-two", long)  # cut before the user: hash differs


def test_commit_message_is_one_trimmed_line() -> None:
    assert commit_message("Build a\n todo\tapp  ", "v1") == "Build a todo app"
    long = commit_message("word " * 100, "v1")
    assert len(long) <= 200
    assert long.endswith("...")
    assert commit_message(" \n ", "01V") == "version 01V"


@pytest.mark.parametrize(
    ("deployment", "state"),
    [
        ({"latest_stage": {"name": "deploy", "status": "success"}}, "deployed"),
        ({"latest_stage": {"name": "build", "status": "success"}}, "pending"),
        ({"latest_stage": {"name": "queued", "status": "active"}}, "pending"),
        ({"latest_stage": {"name": "deploy", "status": "idle"}}, "pending"),
        ({"latest_stage": {"name": "build", "status": "failure"}}, "failed"),
        ({"latest_stage": {"name": "deploy", "status": "canceled"}}, "failed"),
        (
            {
                "stages": [{"name": "build", "status": "failure"}],
                "latest_stage": {"name": "deploy", "status": "success"},
            },
            "failed",
        ),
        ({"latest_stage": None, "stages": None}, "pending"),
        ({}, "pending"),
    ],
)
def test_deployment_state(deployment: dict, state: str) -> None:
    assert deployment_state(deployment) == state


def test_parse_retry_after() -> None:
    assert parse_retry_after("30") == 30
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-4") == 0
    assert parse_retry_after(None) == DEFAULT_RETRY_AFTER_S
    assert parse_retry_after("soon") == DEFAULT_RETRY_AFTER_S
    when = datetime(2030, 1, 1, 0, 2, 0, tzinfo=UTC)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(format_datetime(when, usegmt=True), now=now) == 120


def test_redact() -> None:
    assert redact("token abc and abc", "abc") == "token [redacted] and [redacted]"
    assert redact("nothing here", "", "zzz") == "nothing here"


def test_failure_message_keeps_cloudflare_reason_and_drops_banner() -> None:
    entries: list[dict[str, Any]] = [
        {"type": "wrangler-session"},
        {"type": "command-failed", "code": 8000007, "message": "A request to the Cloudflare API (/x) failed."},
    ]
    lines = [
        " ⛅️ wrangler 4.86.0",
        "───────────────────",
        "✘ [ERROR] A request to the Cloudflare API (/x) failed.",
        "  Project not found. [code: 8000007]",
        "  If you think this is a bug, please open an issue at: https://example.invalid",
        '🪵  Logs were written to "/tmp/x.log"',
    ]
    message = _failure_message(entries, lines)
    assert message.startswith("A request to the Cloudflare API (/x) failed. [code 8000007]")
    assert "Project not found. [code: 8000007]" in message
    assert message.count("A request to the Cloudflare API") == 1
    assert "wrangler 4.86.0" not in message
    assert "If you think" not in message
    assert _failure_message([], []) == "no output"


@pytest.mark.parametrize("project", ["", "Upper", "has space", "-lead", "x" * 59])
def test_deployer_refuses_invalid_project_names(project: str) -> None:
    with pytest.raises(ValueError, match="project"):
        CloudflareDeployer("acct", "token", project)
