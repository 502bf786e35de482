"""Benchmark: time-to-kill of each limit under cgroup v2 (in a qemu guest) beside the host's layers, one run.

The guest (tests/guest: Debian's kernel, only cgroup2 mounted) runs every scenario of tests.guest.scenarios on
cgroup_v2 and on the watchdog; the host runs the same scenarios on the layers it offers (cgroup v1, watchdog) in
the same invocation. Printed per scenario: time-to-kill (from the breach to run() returning with no process left),
when the layer saw the breach, and overshoot in MiB; then ratios v2 / host layer, and v2 / guest watchdog (same
emulator, so the fair one when the guest runs under TCG). The guest watchdog skips the fork bomb: under TCG its
/proc walk over ~2000 processes took 434 s to stop it (one run), which says enough and costs the bench 7 min.
The raw rows go to --json (default /tmp/bench-cgroup-v2.json).
Usage: .venv/bin/python bench/cgroup_v2.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.layers import LAYER_NAMES
from sandbox.probe import layer_availability
from tests.guest.harness import run_scenarios
from tests.guest.scenarios import run_all
from tests.guest.vm import Launcher

EXTRA = {"memory_hog": "overshoot_mb", "output_flood": "overshoot_mb", "cpu_spinner": "cpu_over_seconds"}


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, int | float) else str(value)


def _table(rows: dict[tuple[str, str], dict[str, Any]], columns: list[str], scenarios: list[str]) -> None:
    print(f"{'scenario':<16}" + "".join(f"{c:>26}" for c in columns))
    for name in scenarios:
        cells = []
        for col in columns:
            r = rows.get((col, name))
            if r is None:
                cells.append("n/a")
            elif "error" in r:
                cells.append("error")
            else:
                extra = f" +{_fmt(r.get(EXTRA[name]))}" if name in EXTRA else ""
                cells.append(f"{r['reason']} {_fmt(r.get('kill_seconds'))}s{extra}")
        print(f"{name:<16}" + "".join(f"{c:>26}" for c in cells))


def main() -> None:
    """Boot the guest, run the host's layers, print the figures and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=Path("/tmp/bench-cgroup-v2.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cgroup-v2-"))
    try:
        launcher = Launcher(work, memory_mb=4096)
        t0 = time.monotonic()
        boot, guest = run_scenarios(launcher, ["cgroup_v2", "watchdog", "-watchdog/fork_bomb"],
                                   timeout=900)
        print(f"guest: {launcher.accel_why}; userspace after {boot.boot_seconds} s guest uptime; "
              f"run {time.monotonic() - t0:.1f} s; kernel {guest['where']['kernel']}, "
              f"cgroup mounts {guest['where']['cgroup_mounts']}")
        host_layers = [n for n in LAYER_NAMES if n != "cgroup_v2" and layer_availability(n).available]
        host = run_all(host_layers, work / "host.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.json.write_text(json.dumps({"guest": guest, "host": host, "accel": launcher.accel_why,
                                     "boot_seconds": boot.boot_seconds}, indent=1))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for where, report in (("guest", guest), ("host", host)):
        for r in report["runs"]:
            rows[(f"{where} {r['requested_layer']}", r["scenario"])] = r
    scenarios = list(dict.fromkeys(r["scenario"] for r in guest["runs"]))
    columns = ["guest cgroup_v2", "guest watchdog", *[f"host {n}" for n in host_layers]]
    print("\ntime-to-kill (s), '+' overshoot (MiB past the limit; CPU s past the budget for the spinner):")
    _table(rows, columns, scenarios)
    print("\nbreach seen by the layer, s after it happened:")
    for name in scenarios:
        print(f"{name:<16}" + "".join(f"{_fmt(rows.get((c, name), {}).get('seen_seconds')):>26}" for c in columns))
    print("\nratios of time-to-kill, guest cgroup_v2 / other:")
    for name in scenarios:
        v2 = rows.get(("guest cgroup_v2", name), {}).get("kill_seconds")
        cells = []
        for col in columns[1:]:
            other = rows.get((col, name), {}).get("kill_seconds")
            cells.append(f"{v2 / other:.2f}x" if v2 is not None and other else "-")
        print(f"{name:<16}" + "".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
