"""systemd/previewd.service: `systemd-analyze verify` clean, and the settings the droplet relies on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from daemon.core.config import LimitsConfig
from tests.integration.packaging.conftest import REPO

UNIT = REPO / "systemd" / "previewd.service"


def directives(text: str) -> dict[str, list[str]]:
    """key -> every value it is given, in order (comments and section headers dropped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(systemd_analyze: str, unit_text: str, exe_dir: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Verify the unit with its /opt/previewd/bin executables relocated to exe_dir (they must exist to verify)."""
    path = tmp / "previewd.service"
    path.write_text(unit_text.replace("/opt/previewd/bin/", f"{exe_dir}/"))
    return subprocess.run([systemd_analyze, "verify", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_unit_verifies_clean(systemd_analyze: str, pyz: Path, tmp_path: Path) -> None:
    exe_dir = tmp_path / "bin"
    exe_dir.mkdir()
    (exe_dir / "previewd").symlink_to(pyz)
    text = UNIT.read_text()
    assert text.count("/opt/previewd/bin/previewd") == 2
    proc = verify(systemd_analyze, text, exe_dir, tmp_path)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    # The same check does catch a broken unit.
    broken = verify(systemd_analyze, text.replace("KillMode=mixed", "KillMode=bogus"), exe_dir, tmp_path)
    assert "kill mode" in broken.stderr


def test_unit_security_exposure(systemd_analyze: str, tmp_path: Path) -> None:
    path = tmp_path / "previewd.service"
    path.write_text(UNIT.read_text())
    proc = subprocess.run([systemd_analyze, "security", "--offline=yes", "--no-pager", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for previewd\.service: ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 3.0


def test_unit_settings() -> None:
    d = directives(UNIT.read_text())
    one = {k: v[-1] for k, v in d.items()}
    assert one["User"] == "previewd" and one["Group"] == "previewd"
    assert one["StateDirectory"] == "previewd" and one["ReadWritePaths"] == "/var/lib/previewd"
    env = dict(v.split("=", 1) for v in d["Environment"])
    assert env["PREVIEWD_DATA_DIR"] == "/var/lib/previewd"
    assert env["PREVIEWD_CONFIG"] == "/etc/previewd/config.toml"
    assert env["PREVIEWD_DAEMON_MEMORY_MAX"] and env["PREVIEWD_DAEMON_MEMORY_HIGH"]
    assert one["EnvironmentFile"] == "/etc/previewd/env"
    assert one["Restart"] == "on-failure"
    assert set(one["Delegate"].split()) >= {"memory", "pids"}
    assert one["KillMode"] == "mixed"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "ProtectKernelTunables", "ProtectKernelModules",
                "RestrictSUIDSGID"):
        assert one[key] == "yes", key
    assert one["ProtectSystem"] == "strict"
    assert one["CapabilityBoundingSet"] == ""
    # Builds live in the unit's subtree: a unit-wide memory cap or read-only cgroupfs would break them.
    for key in ("MemoryMax", "MemoryHigh", "ProtectControlGroups", "MemoryDenyWriteExecute"):
        assert key not in d, key
    stop = re.fullmatch(r"(\d+)min", one["TimeoutStopSec"])
    assert stop and int(stop.group(1)) * 60 > LimitsConfig().wall_seconds
