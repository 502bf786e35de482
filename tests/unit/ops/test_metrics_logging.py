"""Metrics render to Prometheus text that parses back; logging carries bound ids and never a secret."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.core import logging_setup
from daemon.core.db import ProjectVersion
from daemon.core.events import BuildDone, ChecksRecorded, Events
from daemon.ops import metrics


def _samples(m: metrics.Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_build_outcomes_and_durations_parse_back() -> None:
    m = metrics.Metrics()
    m.observe_build(ProjectVersion(version_id="A", status="deployed", build_duration_ms=42_000,
                                   install_duration_ms=12_500, deploy_duration_ms=800))
    m.observe_build(ProjectVersion(version_id="B", status="failed", failure_reason="memory_limit",
                                   build_duration_ms=3_000))
    m.observe_build(ProjectVersion(version_id="C", status="failed", failure_reason="memory_limit"))
    s = _samples(m)
    assert s[("previewd_builds_total", (("status", "deployed"),))] == 1
    assert s[("previewd_builds_total", (("status", "failed"),))] == 2
    assert s[("previewd_build_failures_total", (("reason", "memory_limit"),))] == 2
    assert s[("previewd_build_duration_seconds_count", ())] == 2
    assert s[("previewd_build_duration_seconds_sum", ())] == 45.0
    assert s[("previewd_build_duration_seconds_bucket", (("le", "45.0"),))] == 2
    assert s[("previewd_build_duration_seconds_bucket", (("le", "30.0"),))] == 1
    assert s[("previewd_install_duration_seconds_count", ())] == 1
    assert s[("previewd_deploy_duration_seconds_sum", ())] == 0.8


def test_each_daemon_has_its_own_registry_and_hooks_install_once() -> None:
    a, b = metrics.Metrics(), metrics.Metrics()
    events = Events()
    a.install(events)
    a.install(events)
    assert len(events.handlers(BuildDone)) == 1 and len(events.handlers(ChecksRecorded)) == 1
    a.webhook_received("deployment.success")
    a.webhook_retried("deployment.success")
    a.webhook_refused("auth")
    a.rate_limited("ip")
    sa, sb = _samples(a), _samples(b)
    assert sa[("previewd_webhooks_received_total", (("kind", "deployment.success"),))] == 1
    assert sa[("previewd_webhooks_retried_total", (("kind", "deployment.success"),))] == 1
    assert sa[("previewd_webhooks_refused_total", (("reason", "auth"),))] == 1
    assert sa[("previewd_rate_limited_requests_total", (("cap", "ip"),))] == 1
    assert not any(name.startswith("previewd_webhooks") for name, _ in sb)
    assert len(a.refusal_times) == 1


def _log_to(json_lines: bool, secrets: list[str]) -> tuple[io.StringIO, logging.Logger]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging_setup.formatter(json_lines=json_lines, secrets=secrets))
    logger = logging.getLogger(f"test.ops.{json_lines}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return buf, logger


def test_json_lines_carry_bound_ids_and_redact_secrets() -> None:
    buf, logger = _log_to(True, ["s3cr3t-token"])
    with logging_setup.bind(version_id="01ABC", project_id="shop"):
        with logging_setup.bind(request_id="r1"):
            logger.info("deploying with %s", "s3cr3t-token")
        logger.warning("after")
    logger.info("outside")
    try:
        raise RuntimeError("boom s3cr3t-token")
    except RuntimeError:
        logger.exception("failed")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[0]["msg"] == "deploying with [redacted]"
    assert (lines[0]["version_id"], lines[0]["project_id"], lines[0]["request_id"]) == ("01ABC", "shop", "r1")
    assert "request_id" not in lines[1] and lines[1]["version_id"] == "01ABC"
    assert "version_id" not in lines[2]
    assert "s3cr3t-token" not in buf.getvalue() and "RuntimeError" in lines[3]["exc"]


def test_text_lines_for_a_terminal() -> None:
    buf, logger = _log_to(False, [])
    with logging_setup.bind(version_id="01ABC"):
        logger.info("hello")
    assert buf.getvalue().rstrip().endswith("hello [version_id=01ABC]")


def test_configure_picks_json_when_not_a_tty_and_bind_rejects_unknown_names() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        buf = io.StringIO()
        logging_setup.configure("info", stream=buf)
        logging.getLogger("previewd.test").info("x")
        assert json.loads(buf.getvalue())["msg"] == "x"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    with pytest.raises(ValueError, match="unknown log context"), logging_setup.bind(user="x"):
        pass


def test_json_line_shape_is_fixed_and_text_lines_carry_the_traceback_redacted() -> None:
    buf, logger = _log_to(True, [])
    with logging_setup.bind(version_id="01ABC", project_id="shop", request_id="r1"):
        logger.info("é")
    line = json.loads(buf.getvalue())
    assert list(line) == ["ts", "level", "logger", "msg", "version_id", "project_id", "request_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"]) and line["level"] == "info"
    assert '"msg": "é"' in buf.getvalue()  # not \u-escaped
    text, tlogger = _log_to(False, ["s3cr3t-token"])
    try:
        raise RuntimeError("boom s3cr3t-token")
    except RuntimeError:
        with logging_setup.bind(version_id="01ABC"):
            tlogger.exception("failed\nsecond line")
    first, second, *trace = text.getvalue().rstrip().splitlines()
    assert first.endswith(" ERROR test.ops.False: failed [version_id=01ABC]") and second == "second line"
    assert trace[0] == "Traceback (most recent call last):" and trace[-1] == "RuntimeError: boom [redacted]"
