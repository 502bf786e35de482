"""Fail closed: without the isolation layer (bubblewrap missing, or the views turned off) builds are refused with
`sandbox_unavailable`, naming what is missing and how to install it; `[sandbox] allow_unconfined = true` runs them
anyway, flagged loudly by the start log, `doctor` and /healthz?detail=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, log_of, page, start_daemon
from tests.support.live import LiveDaemon


@pytest.fixture
def no_bwrap(tmp_path: Path) -> Iterator[str]:
    """A PATH on which bubblewrap cannot be found (node stays reachable), for the daemon started meanwhile."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = shutil.which("node")
    assert node and shutil.which("bwrap"), "the suite needs node and bubblewrap on this machine"
    (bin_dir / "node").symlink_to(node)
    saved = os.environ["PATH"]
    os.environ["PATH"] = str(bin_dir)
    try:
        yield str(bin_dir)
    finally:
        os.environ["PATH"] = saved


def _doctor(d: LiveDaemon, path: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(d.config), "doctor"],
                         capture_output=True, text=True, env={**os.environ, "PATH": path}, check=True)
    report: dict[str, object] = json.loads(out.stdout)["isolation"]
    return report


def test_builds_are_refused_without_bubblewrap(tmp_path: Path, no_bwrap: str) -> None:
    d = start_daemon(tmp_path, {})
    try:
        body = build(d, "alice", "site", "victim")
        assert body["success"] is False, body
        assert body["error"]["code"] == "sandbox_unavailable", body
        message = body["error"]["message"]
        assert "bubblewrap (bwrap) is not installed" in message and "apt-get install bubblewrap" in message
        assert "allow_unconfined" in message
        assert not (tmp_path / "data" / "projects" / "alice").exists()  # nothing ran, nothing was written
        assert d.get("/healthz").json() == {"ok": True}
        detail = d.get("/healthz", params={"detail": "1"}).json()
        assert detail["isolation"]["confined"] is False and detail["isolation"]["builds_allowed"] is False
        assert "builds are refused (sandbox_unavailable)" in detail["warnings"][0]
        assert "BUILDS WILL BE REFUSED" in d.log.read_text()
        report = _doctor(d, no_bwrap)
        assert "builds will be refused" in str(report["ERROR"]) and "apt-get install bubblewrap" in str(report["fix"])
    finally:
        d.stop()


def test_builds_are_refused_with_the_views_turned_off(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, {}, "[sandbox]\nreadonly_root = false\n")
    try:
        body = build(d, "alice", "site", "victim")
        assert body["error"]["code"] == "sandbox_unavailable", body
        assert "readonly_root = false" in body["error"]["message"]
    finally:
        d.stop()
    # Turned back on, the same project deploys.
    d.config.write_text(d.config.read_text().replace("readonly_root = false", "readonly_root = true"))
    d.start()
    try:
        assert page(d, build(d, "alice", "site", "victim")) == VICTIM_PAGE
        assert d.get("/healthz", params={"detail": "1"}).json()["isolation"]["confined"] is True
    finally:
        d.stop()


def test_allow_unconfined_runs_builds_and_says_so_everywhere(tmp_path: Path, no_bwrap: str) -> None:
    d = start_daemon(tmp_path, {}, "[sandbox]\nallow_unconfined = true\n")
    try:
        body = build(d, "alice", "site", "victim")
        assert page(d, body) == VICTIM_PAGE
        assert "UNCONFINED BUILDS" in log_of(d, body["versionId"])
        detail = d.get("/healthz", params={"detail": "1"}).json()
        assert detail["isolation"]["confined"] is False and detail["isolation"]["builds_allowed"] is True
        assert detail["warnings"][0].startswith("UNCONFINED BUILDS")
        assert "UNCONFINED BUILDS" in d.log.read_text()
        assert str(_doctor(d, no_bwrap)["WARNING"]).startswith("UNCONFINED BUILDS")
    finally:
        d.stop()
