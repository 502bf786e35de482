"""A step's peak memory is the step's own (issue 24): never the daemon's high-water mark, never an earlier step's."""

from __future__ import annotations

from pathlib import Path

from sandbox import Limits
from tests.integration.sandbox.sandbox_support import run_py

MiB = 2**20
HOG = "b = bytearray(200 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\nimport time; time.sleep(1.5)\nprint('ok')"


def test_a_tiny_step_after_a_big_one_reports_a_small_peak(workspace: Path, layer: str) -> None:
    big, _ = run_py(HOG, workspace, Limits(wall_seconds=60), layer)
    assert big.ok and big.peak_memory_bytes >= 150 * MiB, big
    # The daemon itself once held a lot (an artifact read, a big diff): a child spawned now starts with that
    # high-water mark in its rusage, which is not the step's.
    held = bytearray(300 * MiB)
    for i in range(0, len(held), 4096):
        held[i] = 1
    del held
    for code in ("print('ok')", "import time; time.sleep(0.8); print('ok')"):
        tiny, lines = run_py(code, workspace, Limits(wall_seconds=60), layer)
        assert tiny.ok and lines == ["ok"], tiny
        assert tiny.peak_memory_bytes < 64 * MiB, (code, tiny.peak_memory_bytes / MiB, tiny.detail)
    assert "peak" in tiny.detail
