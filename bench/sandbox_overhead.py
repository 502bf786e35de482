"""Benchmark: a ~3 s CPU-bound child under sandbox.run vs plain subprocess.run, interleaved in one run.

Prints, per layer this host offers, the wall-time overhead ratio (target <= 1.03) and the supervisor's
own CPU use while the child runs, as % of one core (target < 2%).
Usage: .venv/bin/python bench/sandbox_overhead.py [--runs N] [--seconds S] [--layer NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sandbox
from sandbox.layers import LAYER_NAMES
from sandbox.probe import layer_availability

PY = "/usr/bin/python3"
WORK = "n = 0\nfor i in range({iters}):\n    n += i * i\n"


def calibrate(seconds: float) -> int:
    """Loop iterations that take about `seconds` of CPU in a plain child."""
    iters = 2_000_000
    while True:
        t0 = time.perf_counter()
        subprocess.run([PY, "-c", WORK.format(iters=iters)], check=True)
        took = time.perf_counter() - t0
        if took > 0.5:
            return int(iters * seconds / took)
        iters *= 4


def main() -> None:
    """Run the interleaved comparison and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--layer", choices=[*LAYER_NAMES, "all"], default="all")
    args = ap.parse_args()
    layers = [n for n in LAYER_NAMES if layer_availability(n).available]
    if args.layer != "all":
        layers = [sandbox.select_layer(args.layer)]
    iters = calibrate(args.seconds)
    argv = [PY, "-c", WORK.format(iters=iters)]
    limits = sandbox.Limits()
    plain: list[float] = []
    boxed: dict[str, list[float]] = {n: [] for n in layers}
    sup_cpu: dict[str, list[float]] = {n: [] for n in layers}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        env = sandbox.safe_env({}, home=ws)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=ws, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            plain.append(time.perf_counter() - t0)
            for name in layers:
                c0, t0 = time.process_time(), time.perf_counter()
                res = sandbox.run(argv, ws, env, limits, layer=name, output_root=ws)
                wall = time.perf_counter() - t0
                if res.reason != "ok":
                    raise SystemExit(f"{name}: unexpected {res.detail}")
                boxed[name].append(wall)
                sup_cpu[name].append(100 * (time.process_time() - c0) / wall)
    base = statistics.median(plain)
    load = os.getloadavg()[0]
    print(f"workload: {PY} loop, {args.runs} interleaved runs, plain median {base:.3f} s "
          f"(min {min(plain):.3f} s); load average {load:.2f} on {os.cpu_count()} CPUs")
    for name in layers:
        # Each sandboxed run against the plain run just before it: robust to load that drifts over minutes.
        pairs = statistics.median(b / p for b, p in zip(boxed[name], plain, strict=True))
        medians = statistics.median(boxed[name]) / base
        print(
            f"{name:10s} overhead ratio {pairs:.3f} (median of pairs; medians {medians:.3f},"
            f" mins {min(boxed[name]) / min(plain):.3f}; target <= 1.03)  supervisor CPU "
            f"{statistics.median(sup_cpu[name]):.2f}% of one core (max {max(sup_cpu[name]):.2f}%; target < 2%)"
        )


if __name__ == "__main__":
    main()
