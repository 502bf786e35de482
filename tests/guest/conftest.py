"""One cgroup v2 guest per session: booted once, it runs every scenario, and the tests read its report."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.guest.harness import run_scenarios
from tests.guest.vm import Boot, GuestError, Launcher


@dataclass
class GuestReport:
    """What the guest handed back, or why it could not (then every test fails with that message)."""

    boot: Boot | None
    report: dict[str, Any]
    accel_why: str
    error: str = ""

    def run(self, scenario: str) -> dict[str, Any]:
        """The scenario's row; fails the test when the guest did not boot or the scenario raised."""
        assert not self.error, f"the cgroup v2 guest did not run: {self.error}"
        rows = [r for r in self.report["runs"] if r["scenario"] == scenario]
        assert rows, f"the guest's report has no {scenario} row (it stopped early); runs: {self.report['runs']}"
        assert "error" not in rows[0], rows[0]
        return rows[0]


@pytest.fixture(scope="session")
def v2_guest(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[GuestReport]:
    """Boot the guest (KVM when it boots, else TCG) and run every scenario on the cgroup_v2 layer in it."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    try:
        launcher = Launcher(tmp_path_factory.mktemp("guest"))
        boot, report = run_scenarios(launcher, ["cgroup_v2"])
    except GuestError as err:
        yield GuestReport(None, {"runs": []}, "", str(err))
        return
    if reporter is not None:
        reporter.write_line(f"\n[guest] {launcher.accel_why}; userspace after {boot.boot_seconds} s of guest "
                            f"uptime, whole run {boot.wall_seconds:.1f} s")
    yield GuestReport(boot, report, launcher.accel_why)


@dataclass
class ServiceReport:
    """Facts the systemd guest's driver wrote (tests/guest/service_driver.py) and the service's journal."""

    facts: dict[str, Any]
    journal: str
    accel_why: str
    boot_seconds: float | None
    wall_seconds: float


@pytest.fixture(scope="session")
def service_guest(tmp_path_factory: pytest.TempPathFactory) -> ServiceReport:
    """Build and stage the package, boot systemd as PID 1, run the unit as it ships; the driver's facts."""
    from tests.guest.service import boot_service, stage_package

    work = tmp_path_factory.mktemp("service")
    launcher = Launcher(work)
    if launcher.accel() == "tcg" and os.environ.get("PREVIEWD_GUEST_SERVICE") != "1":
        pytest.skip(f"{launcher.accel_why}: under TCG this run took 33 min here (two starts of the executable at "
                    "8-10 min each, most of it importing Python); opt in with PREVIEWD_GUEST_SERVICE=1")
    boot, facts = boot_service(launcher, stage_package(work / "stage"), timeout=2700)
    journal = boot.io_dir / "journal.txt"
    return ServiceReport(facts, journal.read_text() if journal.exists() else "", launcher.accel_why,
                         boot.boot_seconds, boot.wall_seconds)
