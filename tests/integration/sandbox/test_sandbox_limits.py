"""Each limit breached on purpose, on every layer this host offers, then an ordinary run that must pass."""

from __future__ import annotations

import uuid
from pathlib import Path

from sandbox import Limits
from tests.integration.sandbox.sandbox_support import assert_normal_run, no_process_with, run_py

MiB = 2**20

# Allocates in touched 16 MiB chunks up to `total`, then holds it: a build that keeps what it takes.
HOG = """
import time
chunks = []
for _ in range({total} // (16 << 20)):
    chunks.append(b"x" * (16 << 20))
print("allocated", flush=True)
time.sleep(30)
"""


def test_memory_hog_at_twice_the_limit(workspace: Path, layer: str) -> None:
    limits = Limits(memory_bytes=128 * MiB, wall_seconds=20)
    res, _ = run_py(HOG.format(total=256 * MiB), workspace, limits, layer)
    assert res.reason == "memory_limit", res
    assert res.exit_code is None
    assert res.detail.startswith("memory_limit: tree reached")
    assert res.layer == layer
    assert_normal_run(workspace, layer)


def test_busy_loop_hits_cpu_limit(workspace: Path, layer: str) -> None:
    res, _ = run_py("while True: pass", workspace, Limits(cpu_seconds=1, wall_seconds=30), layer)
    assert res.reason == "cpu_limit", res
    assert res.cpu_seconds >= 1
    assert "(limit 1 s)" in res.detail
    assert_normal_run(workspace, layer)


def test_four_parallel_burners_share_one_cpu_budget(workspace: Path, layer: str) -> None:
    # Per-process RLIMIT_CPU would let each use 2 s; the tree budget must stop them together.
    code = """
import subprocess, sys
procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
for p in procs:
    p.wait()
"""
    res, _ = run_py(code, workspace, Limits(cpu_seconds=2, wall_seconds=30), layer)
    assert res.reason == "cpu_limit", res
    assert res.cpu_seconds >= 2
    assert_normal_run(workspace, layer)


def test_writing_twice_the_output_cap(workspace: Path, layer: str) -> None:
    code = """
import time
with open("dist.bin", "wb") as f:
    for _ in range(32):
        f.write(b"o" * (1 << 20))
        f.flush()
time.sleep(30)
"""
    limits = Limits(output_bytes=16 * MiB, wall_seconds=20)
    res, _ = run_py(code, workspace, limits, layer, output_root=workspace)
    assert res.reason == "output_limit", res
    assert res.output_bytes > 16 * MiB
    assert_normal_run(workspace, layer)


def test_output_cap_holds_for_a_writer_that_exits_at_once(workspace: Path, layer: str) -> None:
    # The writer usually exits before any periodic scan; then the final scan names the breach.
    code = "open('big.bin', 'wb').write(b'o' * (32 << 20))"
    res, _ = run_py(code, workspace, Limits(output_bytes=16 * MiB, wall_seconds=20), layer, output_root=workspace)
    assert res.reason == "output_limit", res
    assert res.output_bytes > 16 * MiB
    assert_normal_run(workspace, layer)


def test_many_empty_files_count_as_output(workspace: Path, layer: str) -> None:
    code = """
import os, time
os.mkdir("out")
for i in range(3000):
    open(f"out/{i}", "w").close()
time.sleep(30)
"""
    # 3000 empty files hold no data blocks, but each inode is charged 4 KiB: ~12 MiB against 4 MiB.
    res, _ = run_py(code, workspace, Limits(output_bytes=4 * MiB, wall_seconds=20), layer, output_root=workspace)
    assert res.reason == "output_limit", res
    assert_normal_run(workspace, layer)


def test_node_modules_and_symlinks_are_not_output(workspace: Path, layer: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"s" * (32 * MiB))
    code = f"""
import os
os.makedirs("node_modules/pkg")
open("node_modules/pkg/blob", "wb").write(b"n" * (32 << 20))
os.makedirs("dist")
os.symlink({str(outside)!r}, "dist/leak")
print("done")
"""
    res, lines = run_py(code, workspace, Limits(output_bytes=16 * MiB, wall_seconds=20), layer,
                        output_root=workspace)
    assert (res.reason, lines) == ("ok", ["done"]), res
    assert res.output_bytes < MiB
    assert_normal_run(workspace, layer)


def test_bounded_fork_bomb_is_contained(workspace: Path, layer: str) -> None:
    marker = f"bomb-{uuid.uuid4().hex}"
    # Bounded on purpose (a binary tree of depth 8, at most 511 processes) so a failed
    # containment cannot take the machine down; the pids limit is far below that.
    code = f"""
import os, time
MARK = {marker!r}
depth = 0
while depth < 8:
    if os.fork() == 0:
        depth += 1
        continue
    if os.fork() == 0:
        depth += 1
        continue
    break
time.sleep(30)
"""
    res, _ = run_py(code, workspace, Limits(pids=32, memory_bytes=256 * MiB, wall_seconds=10), layer)
    assert res.reason in ("pids_limit", "memory_limit"), res
    assert no_process_with(marker)
    assert_normal_run(workspace, layer)


def test_sleep_past_the_wall_clock(workspace: Path, layer: str) -> None:
    res, _ = run_py("import time; time.sleep(60)", workspace, Limits(wall_seconds=1), layer)
    assert res.reason == "timeout", res
    assert res.exit_code is None
    assert "wall limit 1 s" in res.detail
    assert_normal_run(workspace, layer)


def test_sigterm_ignored_is_still_killed(workspace: Path, layer: str) -> None:
    marker = f"stubborn-{uuid.uuid4().hex}"
    code = f"""
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "time.sleep(60)  # {marker}"])
print("ready", flush=True)
time.sleep(60)
"""
    res, lines = run_py(code, workspace, Limits(wall_seconds=3), layer)
    assert res.reason == "timeout", res
    assert lines == ["ready"]
    assert no_process_with(marker)
    assert_normal_run(workspace, layer)


def test_nonzero_exit_is_reported(workspace: Path, layer: str) -> None:
    res, lines = run_py("import sys; print('bad'); sys.exit(3)", workspace, Limits(wall_seconds=20), layer)
    assert (res.reason, res.exit_code, lines) == ("exit_nonzero", 3, ["bad"]), res
    assert_normal_run(workspace, layer)
