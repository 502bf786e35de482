"""The Pages notification webhook: constant-time secret check and the defensive payload parser."""

from __future__ import annotations

import json

import pytest

from daemon.deployers.cloudflare.webhook import PagesEvent, WebhookPayloadError, parse_pages_event, verify_auth

DEP = "5bd3f1f4-3d0e-4d8c-9d56-1f2a3b4c5d6e"
OTHER = "0f0e0d0c-0b0a-4909-8807-060504030201"
SECRET = "whsec-0123456789abcdef"


def _parse(payload: object) -> PagesEvent:
    event = parse_pages_event(json.dumps(payload).encode())
    assert event is not None
    return event


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (SECRET, True),
        ("whsec-0123456789abcdeX", False),  # same length, last char differs
        ("whsec-0123456789abcde", False),  # shorter
        (SECRET + "0", False),  # longer
        ("", False),
        (None, False),
        ("whsec-0123456789abcdé", False),  # non-ASCII must not raise
    ],
)
def test_verify_auth(header: str | None, expected: bool) -> None:
    assert verify_auth(header, SECRET) is expected


def test_verify_auth_refuses_everything_without_a_configured_secret() -> None:
    assert verify_auth("", "") is False
    assert verify_auth("anything", "") is False


def test_full_success_payload() -> None:
    event = _parse(
        {
            "name": "pages-alerts",
            "text": f"Deployment {DEP} for project previewd succeeded",
            "data": {"deployment_id": DEP, "project_name": "previewd", "event": "EVENT_DEPLOYMENT_SUCCESS"},
            "ts": 1732579200,
            "account_id": "acc",
            "policy_id": "pol",
            "alert_type": "pages_event_alert",
            "alert_event": "EVENT_DEPLOYMENT_SUCCESS",
        }
    )
    assert (event.deployment_id, event.state, event.project) == (DEP, "deployed", "previewd")
    assert event.raw["alert_type"] == "pages_event_alert"


@pytest.mark.parametrize(
    ("data", "expected_id", "expected_project"),
    [
        ({"deploymentId": DEP, "projectName": "p1"}, DEP, "p1"),
        ({"deployment": {"id": DEP, "project": {"name": "p2"}}}, DEP, "p2"),
        ({"pages": {"deployment-id": DEP}, "pages_project": "p3"}, DEP, "p3"),
        ({"id": DEP}, DEP, None),
        ({"id": "not-a-uuid-and-not-named-deployment"}, None, None),
        ({"deployment_id": "short-id_1"}, "short-id_1", None),  # explicitly named: any identifier
        ({"deployment_id": "bad id; drop table"}, None, None),
    ],
)
def test_deployment_id_under_plausible_names(data: dict, expected_id: str | None, expected_project: str | None) -> None:
    event = _parse({"alert_type": "pages_event_alert", "alert_event": "EVENT_DEPLOYMENT_FAILED", "data": data})
    assert event.deployment_id == expected_id
    assert event.project == expected_project
    assert event.state == "failed"


def test_explicit_name_wins_over_generic_id() -> None:
    event = _parse({"data": {"id": OTHER, "deployment_id": DEP}})
    assert event.deployment_id == DEP


def test_deployment_id_from_text_prefers_the_one_after_deployment() -> None:
    event = _parse({"text": f"Project {OTHER}: deployment {DEP} has started", "data": {}})
    assert event.deployment_id == DEP
    assert event.state == "started"
    only = _parse({"text": f"Something about {OTHER}"})
    assert only.deployment_id == OTHER


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"alert_event": "EVENT_DEPLOYMENT_STARTED"}, "started"),
        ({"alert_event": "EVENT_DEPLOYMENT_FAILED"}, "failed"),
        ({"data": {"status": "failure"}}, "failed"),
        ({"data": {"status": "canceled"}}, "failed"),
        ({"data": {"event": "deployment.success"}}, "deployed"),
        ({"data": {"latest_stage": {"name": "build", "status": "success"}}}, "unknown"),  # a stage, not the outcome
        ({}, "unknown"),
    ],
)
def test_state_from_event_fields(fields: dict, state: str) -> None:
    assert _parse({"data": {"deployment_id": DEP}, **fields} if "data" not in fields else fields).state == state


def test_dashboard_test_message() -> None:
    event = _parse({"text": "Hello World! This is a test message sent from https://cloudflare.com."})
    assert event.deployment_id is None
    assert event.project is None
    assert event.state == "unknown"


def test_other_alert_types_are_not_pages_events() -> None:
    body = json.dumps({"alert_type": "billing_usage_alert", "data": {"id": DEP}}).encode()
    assert parse_pages_event(body) is None


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2, 3]", b'"a string"', b"null", b"42", b"\xff\xfe\x00garbage", b"[" * 100_000],
)
def test_garbage_raises_payload_error(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as err:
        parse_pages_event(body)
    assert err.value.code == "bad_webhook_payload"
    assert err.value.message


def test_odd_value_types_do_not_crash() -> None:
    event = _parse({"data": [1, 2], "text": 7, "alert_event": None, "alert_type": 3})
    assert (event.deployment_id, event.state, event.project) == (None, "unknown", None)
    deep: dict = {"deployment_id": DEP}
    for _ in range(50):
        deep = {"nested": deep}
    assert _parse({"data": deep}).deployment_id is None  # beyond the search depth: left to polling
