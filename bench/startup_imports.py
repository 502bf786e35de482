"""Benchmark: CPU the daemon's start-up imports cost, now against the same imports plus the visual diff (numpy).

Under TCG the packaged service takes minutes to answer /healthz, and a plain guest spent 198 s of its `serve`
start importing; the visual diff's numpy was 10 s of that until screens.py imported it lazily. This measures the
child's user+system CPU (less sensitive to a loaded host than wall time) of a fresh interpreter importing what
`previewd serve` imports, `--runs` times each way, interleaved, and prints the medians and their ratio.
Usage: .venv/bin/python bench/startup_imports.py [--runs N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOW = "import daemon.cli.serve, daemon.wiring"
BEFORE = NOW + "; import daemon.render.visual"  # what serve imported while screens.py imported visual at the top


def cpu_of(code: str) -> float:
    """User+system CPU seconds of one `python -c code` child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cpu_of(NOW)  # warm the page cache and the bytecode of both sets
    cpu_of(BEFORE)
    now, before = [], []
    for _ in range(args.runs):
        before.append(cpu_of(BEFORE))
        now.append(cpu_of(NOW))
    b, n = statistics.median(before), statistics.median(now)
    print(f"serve's imports with numpy (before): median {b:.2f} s CPU over {args.runs} runs")
    print(f"serve's imports now (numpy lazy):    median {n:.2f} s CPU over {args.runs} runs")
    print(f"ratio now / before: {n / b:.2f}x")


if __name__ == "__main__":
    main()
