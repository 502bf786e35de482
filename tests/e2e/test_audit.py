"""`pnpm audit` through the daemon: a critical advisory fails the build (policy fail) or warns (policy warn);
an advisory database that cannot be reached is recorded as unavailable, never as a pass or a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.npm_audit_server import NpmAuditServer
from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm

# One small real dependency, so the lockfile has something to audit.
WITH_DEP = '''
deps = {"is-number": "7.0.0"}
build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>"}
'''


def _daemon(tmp: Path, policy: str, registry: str) -> LiveDaemon:
    gen = write_generator(tmp, WITH_DEP)
    cfg = generator_config(gen, "[render]\nenabled = false\n")
    cfg = cfg.replace('[build]\naudit = "off"\n', f'[build]\naudit = "{policy}"\naudit_registry = "{registry}"\n'
                                                   "audit_cache_minutes = 0\n")
    return LiveDaemon(tmp, cfg).start()


def test_critical_advisory_fails_the_build(tmp_path: Path) -> None:
    with NpmAuditServer(critical=True) as advisories:
        d = _daemon(tmp_path, "fail", advisories.url)
        try:
            body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "a", "prompt": "x"}).json()
            assert body["success"] is False, body
            assert body["error"]["code"] == "audit_failed" and "critical" in body["error"]["message"]
            assert d.get(f"/versions/{body['versionId']}").json()["auditStatus"] == "critical"
            assert any("/-/npm/v1/security/" in p for p in advisories.requests)
        finally:
            d.stop()


def test_critical_advisory_only_warns_under_warn(tmp_path: Path) -> None:
    with NpmAuditServer(critical=True) as advisories:
        d = _daemon(tmp_path, "warn", advisories.url)
        try:
            body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "a", "prompt": "x"}).json()
            assert body["success"] is True, body
            assert d.get(f"/versions/{body['versionId']}").json()["auditStatus"] == "critical"
            assert "WARNING audit" in d.get(f"/versions/{body['versionId']}/log").text
        finally:
            d.stop()


def test_clean_report_passes_and_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    with NpmAuditServer(critical=False) as advisories:
        (tmp_path / "clean").mkdir()
        d = _daemon(tmp_path / "clean", "fail", advisories.url)
        try:
            body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "a", "prompt": "x"}).json()
            assert body["success"] is True, body
            assert d.get(f"/versions/{body['versionId']}").json()["auditStatus"] == "passed"
        finally:
            d.stop()
    # nothing listens there now: the audit cannot reach a database, which must not fail the build
    (tmp_path / "gone").mkdir()
    d = _daemon(tmp_path / "gone", "fail", advisories.url)
    try:
        body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "b", "prompt": "x"}).json()
        assert body["success"] is True, body
        v = d.get(f"/versions/{body['versionId']}").json()
        assert v["auditStatus"] == "unavailable"
        assert "audit unavailable" in d.get(f"/versions/{body['versionId']}/log").text
    finally:
        d.stop()
