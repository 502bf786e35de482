"""No process outlives the call: double-forked, setsid'd grandchildren die, on success and on breach."""

from __future__ import annotations

import uuid
from pathlib import Path

from sandbox import Limits
from tests.integration.sandbox.sandbox_support import alive, assert_normal_run, no_process_with, read_pids, run_py

# The classic daemonisation: fork, setsid, fork again, parent exits; the grandchild is orphaned out of
# the session and process group (os.killpg cannot reach it) and would keep running after the build.
DAEMONIZE = """
import os, sys, time
MARK = {marker!r}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open({pidfile!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        os.closerange(0, 3)
        time.sleep(120)
        os._exit(0)
    os._exit(0)
while not os.path.exists({pidfile!r}) or not open({pidfile!r}).read().endswith("\\n"):
    time.sleep(0.01)  # wait until the grandchild has recorded its pid
print("build ok", flush=True)
{tail}
"""


def test_double_forked_grandchild_dies_after_a_successful_command(workspace: Path, layer: str) -> None:
    marker, pidfile = f"daemon-{uuid.uuid4().hex}", workspace / "grandchild.pid"
    code = DAEMONIZE.format(marker=marker, pidfile=str(pidfile), tail="")
    res, lines = run_py(code, workspace, Limits(wall_seconds=20), layer)
    assert (res.reason, res.exit_code, lines) == ("ok", 0, ["build ok"]), res
    pids = read_pids(pidfile)
    assert len(pids) == 1
    assert not alive(pids[0])
    assert no_process_with(marker)
    assert_normal_run(workspace, layer)


def test_double_forked_grandchild_dies_on_breach(workspace: Path, layer: str) -> None:
    marker, pidfile = f"daemon-{uuid.uuid4().hex}", workspace / "grandchild.pid"
    code = DAEMONIZE.format(marker=marker, pidfile=str(pidfile), tail="time.sleep(60)")
    res, _ = run_py(code, workspace, Limits(wall_seconds=3), layer)
    assert res.reason == "timeout", res
    pids = read_pids(pidfile)
    assert len(pids) == 1
    assert not alive(pids[0])
    assert no_process_with(marker)
    assert_normal_run(workspace, layer)


def test_background_children_of_a_successful_command_die(workspace: Path, layer: str) -> None:
    marker = f"bg-{uuid.uuid4().hex}"
    code = f"""
import subprocess, sys
for _ in range(3):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # {marker}"],
                     start_new_session=True)
print("spawned")
"""
    res, lines = run_py(code, workspace, Limits(wall_seconds=20), layer)
    assert (res.reason, lines) == ("ok", ["spawned"]), res
    assert no_process_with(marker)
    assert_normal_run(workspace, layer)
