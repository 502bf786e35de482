"""The event bus (daemon/core/events.py): handlers by declared type, in order, once each; a failing handler is
logged and never fails the publisher or the handlers after it."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from daemon.core.db import ProjectVersion
from daemon.core.events import BuildDone, ChecksRecorded, DeploySettled, Events


def test_an_event_reaches_the_handlers_of_its_type_only_in_order() -> None:
    bus = Events()
    seen: list[str] = []
    bus.subscribe(BuildDone, lambda e: seen.append(f"a {e.version.version_id}"))
    bus.subscribe(BuildDone, lambda e: seen.append(f"b {e.version.version_id}"))
    bus.subscribe(DeploySettled, lambda e: seen.append(f"settled {e.version_id} {e.state} {e.via}"))
    bus.publish(BuildDone(ProjectVersion(version_id="V1")))
    bus.publish(DeploySettled("V2", "deployed", "poll"))
    bus.publish(ChecksRecorded(ProjectVersion(version_id="V3")))  # nobody listens: nothing happens
    assert seen == ["a V1", "b V1", "settled V2 deployed poll"]


def test_a_failing_handler_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus = Events()
    seen: list[str] = []

    def broken(_e: ChecksRecorded) -> None:
        raise RuntimeError("metrics down")

    bus.subscribe(ChecksRecorded, broken)
    bus.subscribe(ChecksRecorded, lambda e: seen.append(e.version.version_id))
    with caplog.at_level(logging.ERROR, logger="previewd.events"):
        bus.publish(ChecksRecorded(ProjectVersion(version_id="V1")))  # does not raise
    assert seen == ["V1"]
    assert "ChecksRecorded handler" in caplog.text and "metrics down" in caplog.text


def test_the_same_handler_subscribed_twice_runs_once_and_can_leave() -> None:
    bus = Events()
    seen: list[object] = []
    handler = seen.append
    bus.subscribe(DeploySettled, handler)
    bus.subscribe(DeploySettled, handler)
    assert len(bus.handlers(DeploySettled)) == 1
    event = DeploySettled("V1", "failed", "webhook")
    bus.publish(event)
    bus.unsubscribe(DeploySettled, handler)
    bus.unsubscribe(DeploySettled, handler)  # not subscribed any more: nothing to do
    bus.publish(event)
    assert seen == [event]


def test_events_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DeploySettled("V1", "deployed", "poll").state = "failed"  # type: ignore[misc]
