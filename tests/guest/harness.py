"""The guest's side of the suite: the script it runs and the report it hands back.

The script lays out the cgroup tree the way systemd does for the packaged unit (`Delegate=cpu memory pids`):
controllers enabled down to `system.slice/previewd.service`, the supervisor alone in it, so the v2 layer takes
the same path as under the service (it moves itself into the `daemon` leaf and makes `previewd/<build>` beside it).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from tests.guest.vm import IO_MOUNT, Boot, GuestError, Launcher

REPO = Path(__file__).resolve().parents[2]
UNIT_CGROUP = "/sys/fs/cgroup/system.slice/previewd.service"

SCENARIO_SCRIPT = """set -e
cd {repo}
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p {unit}
echo "+cpu +memory +pids" > /sys/fs/cgroup/system.slice/cgroup.subtree_control
echo $$ > {unit}/cgroup.procs
exec env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 {python} -m tests.guest.scenarios {out} {layers}
"""


def run_scenarios(launcher: Launcher, layers: list[str], timeout: float = 400.0) -> tuple[Boot, dict[str, Any]]:
    """Boot one guest that runs every scenario on `layers`; return the boot and the report it wrote.

    Raises GuestError (quoting the console and the script's output) when the guest did not produce a report.
    """
    script = SCENARIO_SCRIPT.format(repo=shlex.quote(str(REPO)), unit=UNIT_CGROUP,
                                    python=shlex.quote(str(REPO / ".venv" / "bin" / "python")),
                                    out=f"{IO_MOUNT}/results.json", layers=" ".join(layers))
    boot = launcher.boot(script, timeout)
    results = boot.io_dir / "results.json"
    if not results.exists():
        raise GuestError(f"the {boot.accel} guest wrote no report (script exit {boot.exit_code}); its output:\n"
                         f"{boot.log()[-3000:]}\nconsole tail:\n{boot.console[-2000:]}")
    report = json.loads(results.read_text())
    report["complete"] = report.get("leftover_cgroups") is not None
    return boot, report

