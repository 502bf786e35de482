"""Live output: lines arrive through on_line as they come, merged from stdout and stderr, capped."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import sandbox
from sandbox import Limits
from tests.integration.sandbox.sandbox_support import assert_normal_run, run_py

MiB = 2**20


def test_stdout_flood_is_capped(workspace: Path, layer: str) -> None:
    # 64 MiB of short lines against a 1 MiB log cap; the command finishes on its own.
    code = """
import sys
line = b"y" * 63 + b"\\n"
chunk = line * 16384
for _ in range(64):
    sys.stdout.buffer.write(chunk)
"""
    res, lines = run_py(code, workspace, Limits(log_bytes=MiB, wall_seconds=30), layer)
    assert res.reason == "ok", res
    assert res.log_truncated is True
    notices = [line for line in lines if line.startswith("[sandbox] log truncated")]
    assert len(notices) == 1 and lines[-1] == notices[0]
    assert sum(len(line) + 1 for line in lines[:-1]) <= MiB
    assert res.output_bytes <= MiB
    assert_normal_run(workspace, layer)


def test_endless_flood_is_capped_and_stopped(workspace: Path, layer: str) -> None:
    code = "import sys\nwhile True: sys.stdout.write('z' * 200 + '\\n')"
    res, lines = run_py(code, workspace, Limits(log_bytes=MiB, wall_seconds=3), layer)
    assert (res.reason, res.log_truncated) == ("timeout", True), res
    assert sum(len(line) + 1 for line in lines[:-1]) <= MiB
    assert_normal_run(workspace, layer)


def test_lines_arrive_live_and_merged(workspace: Path, layer: str) -> None:
    # The child waits for a file only the callback creates: it can finish only if line one arrived live.
    flag = workspace / "seen"
    code = f"""
import os, sys, time
print("first", flush=True)
print("to stderr", file=sys.stderr, flush=True)
while not os.path.exists({str(flag)!r}):
    time.sleep(0.02)
sys.stdout.buffer.write(b"bad \\xff byte\\nno newline at end")
"""
    got: list[str] = []

    def on_line(line: str) -> None:
        got.append(line)
        if line == "first":
            flag.touch()

    res = sandbox.run(["/usr/bin/python3", "-c", code], workspace, sandbox.safe_env({}, home=workspace),
                      Limits(wall_seconds=20), on_line=on_line, layer=layer)
    assert res.reason == "ok", res
    assert got == ["first", "to stderr", "bad \ufffd byte", "no newline at end"]
    assert_normal_run(workspace, layer)


def test_a_long_lived_step_reads_its_callers_commands(workspace: Path, layer: str) -> None:
    # The warm bundler's channel: commands on stdin, answers as lines; the caller learns the tree's first pid.
    r, w = os.pipe()
    pids: list[int] = []
    code = "import sys\nfor line in sys.stdin:\n    print('got', line.strip(), flush=True)"
    out: list[tuple[sandbox.Result, list[str]]] = []
    t = threading.Thread(target=lambda: out.append(run_py(code, workspace, Limits(wall_seconds=30), layer, stdin=r,
                                                          on_spawn=pids.append)))
    t.start()
    os.write(w, b"build 1\nbuild 2\n")
    os.close(w)  # EOF: the step ends on its own
    t.join(60)
    os.close(r)
    res, lines = out[0]
    assert res.reason == "ok", res
    assert lines == ["got build 1", "got build 2"] and len(pids) == 1 and pids[0] > 0
