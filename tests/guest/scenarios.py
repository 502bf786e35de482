"""Hostile steps run through the real sandbox runner, timed: the same code runs in the cgroup v2 guest and on the host.

Each scenario runs one program under `sandbox.run(layer=...)` and returns a flat dict: how the run ended, which
layer ran it, how long the tree lived past the moment it broke its limit (`kill_seconds`, to run() returning with
no process left), how far past the limit it got, and what the layer read from the kernel (memory.events,
pids.events, cgroup.kill writes, spied on `sandbox.layers.cgfs`). Usage, in the guest or on the host:
    python -m tests.guest.scenarios OUT.json LAYER [LAYER...] [-LAYER/SCENARIO...]   (a '-' item skips that run)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sandbox
from sandbox import Limits, runner
from sandbox.layers import Layer, Usage, cgfs
from sandbox.probe import layer_availability

MiB = 2**20
PY = "/usr/bin/python3"  # the system interpreter: the same binary in the guest (shared root) and on the host

# Progress lines are "<CLOCK_MONOTONIC seconds> <bytes so far>": the clock is the supervisor's too.
PROGRESS = """
import os, time
_fd = os.open({progress!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def mark(n):
    os.write(_fd, b"%.6f %d\\n" % (time.monotonic(), n))
"""

# Touches every page (bytes * n memsets), 16 MiB at a time, as fast as the interpreter goes.
HOG = PROGRESS + """
chunks, total = [], 0
mark(0)
while total < {stop}:
    chunks.append(b"x" * (16 << 20))
    total += 16 << 20
    mark(total)
time.sleep(60)
"""

# Bounded (a binary tree of depth 10, at most 2047 processes) so a failed containment cannot take the machine down.
BOMB = PROGRESS + """
mark(0)
depth = 0
while depth < 10:
    try:
        if os.fork() == 0:
            depth += 1
            continue
        if os.fork() == 0:
            depth += 1
            continue
    except OSError:
        pass
    break
time.sleep(60)
"""

SPIN = PROGRESS + """
mark(0)
while True:
    pass
"""

# fork, setsid, fork: the grandchild leaves the session and process group (killpg cannot reach it).
DAEMON = PROGRESS + """
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open({pidfile!r}, "w") as f:
            f.write(str(os.getpid()))
        os.rename({pidfile!r}, {pidfile!r} + ".done")
        os.closerange(0, 3)
        time.sleep(120)
        os._exit(0)
    os._exit(0)
while not os.path.exists({pidfile!r} + ".done"):
    time.sleep(0.01)
mark(0)
"""

FLOOD = PROGRESS + """
total = 0
with open("flood.bin", "wb") as f:
    while total < {stop}:
        f.write(b"o" * (1 << 20))
        f.flush()
        total += 1 << 20
        mark(total)
time.sleep(60)
"""


class KernelSpy:
    """Records the layer's samples (with their time), what it read from memory.events/pids.events, and every
    write to cgroup.kill: the proof of which kernel interface ended the run, and when the breach was seen."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, int]] = {}
        self.kill_writes = 0
        self.samples: list[tuple[float, Usage]] = []

    def first(self, broke: Callable[[Usage], bool]) -> float | None:
        """Time of the first sample that showed the breach."""
        return next((t for t, u in self.samples if broke(u)), None)

    def crossing(self, value: Callable[[Usage], float], limit: float) -> float | None:
        """When a growing figure passed `limit`, interpolated between the two samples around it."""
        prev: tuple[float, float] | None = None
        for t, u in self.samples:
            v = value(u)
            if v >= limit:
                if prev is None or v == prev[1]:
                    return t
                return prev[0] + (t - prev[0]) * (limit - prev[1]) / (v - prev[1])
            prev = (t, v)
        return None

    @contextmanager
    def active(self) -> Iterator[KernelSpy]:
        read_kv, write, make = cgfs.read_kv, cgfs.write, runner.make_layer

        def spy_make(name: str) -> Layer:
            lay = make(name)
            sample = lay.sample

            def spy_sample() -> Usage:
                u = sample()
                self.samples.append((time.monotonic(), u))
                return u

            lay.sample = spy_sample  # type: ignore[method-assign]
            return lay

        def spy_read(path: Path) -> dict[str, int]:
            got = read_kv(path)
            if path.name in ("memory.events", "pids.events") and got:
                self.events[path.name] = got
            return got

        def spy_write(path: Path, value: str) -> None:
            if path.name == "cgroup.kill":
                self.kill_writes += 1
            write(path, value)

        cgfs.read_kv, cgfs.write, runner.make_layer = spy_read, spy_write, spy_make  # type: ignore[assignment]
        try:
            yield self
        finally:
            cgfs.read_kv, cgfs.write, runner.make_layer = read_kv, write, make  # type: ignore[assignment]


def _progress(path: Path) -> list[tuple[float, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        t, n = line.split()
        out.append((float(t), int(n)))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] != b"Z"


def _run(layer: str, program: str, limits: Limits, base: Path, **kw: Any) -> tuple[sandbox.Result, float, KernelSpy]:
    ws = base / "ws"
    (ws / "home").mkdir(parents=True)
    env = sandbox.safe_env({}, home=ws / "home")
    spy = KernelSpy()
    with spy.active():
        res = sandbox.run([PY, "-c", program], ws, env, limits, layer=layer, **kw)
    return res, time.monotonic(), spy


def _common(name: str, res: sandbox.Result, spy: KernelSpy) -> dict[str, Any]:
    return {
        "scenario": name, "reason": res.reason, "layer": res.layer, "exit_code": res.exit_code,
        "detail": res.detail, "cpu_seconds": res.cpu_seconds, "peak_mb": round(res.peak_memory_bytes / MiB, 1),
        "output_mb": round(res.output_bytes / MiB, 1), "wall_seconds": res.wall_seconds,
        "events": spy.events, "cgroup_kill_writes": spy.kill_writes, "samples": len(spy.samples),
    }


def memory_hog(layer: str, base: Path) -> dict[str, Any]:
    """A fast allocation (touched 16 MiB chunks) towards 2.5x the default 1 GiB limit."""
    limits = Limits(wall_seconds=120)
    progress = base / "progress"
    res, end, spy = _run(layer, HOG.format(progress=str(progress), stop=limits.memory_bytes * 5 // 2), limits, base)
    marks = _progress(progress)
    crossed = next((t for t, n in marks if n > limits.memory_bytes), marks[-1][0] if marks else end)
    reached = marks[-1][1] if marks else 0
    seen = spy.first(lambda u: u.oom_killed or u.memory_bytes > limits.memory_bytes)
    return {**_common("memory_hog", res, spy), "kill_seconds": round(end - crossed, 3),
            "seen_seconds": None if seen is None else round(seen - crossed, 3),
            "allocated_mb": round(reached / MiB), "overshoot_mb": round((reached - limits.memory_bytes) / MiB)}


def fork_bomb(layer: str, base: Path) -> dict[str, Any]:
    """A binary fork tree far past pids=64."""
    limits = Limits(pids=64, wall_seconds=120)
    progress = base / "progress"
    res, end, spy = _run(layer, BOMB.format(progress=str(progress)), limits, base)
    marks = _progress(progress)
    start = marks[0][0] if marks else end
    seen = spy.first(lambda u: u.pids_denied or u.tasks > limits.pids)
    return {**_common("fork_bomb", res, spy), "kill_seconds": round(end - start, 3),
            "seen_seconds": None if seen is None else round(seen - start, 3),
            "pids_max": limits.pids}


def cpu_spinner(layer: str, base: Path) -> dict[str, Any]:
    """One busy loop against a 1 s CPU budget: the lag is the wall time past the budget."""
    limits = Limits(cpu_seconds=1.0, wall_seconds=120)
    progress = base / "progress"
    res, end, spy = _run(layer, SPIN.format(progress=str(progress)), limits, base)
    crossed = spy.crossing(lambda u: u.cpu_seconds, limits.cpu_seconds)
    seen = spy.first(lambda u: u.cpu_seconds >= limits.cpu_seconds)
    return {**_common("cpu_spinner", res, spy),
            "kill_seconds": None if crossed is None else round(end - crossed, 3),
            "seen_seconds": None if crossed is None or seen is None else round(seen - crossed, 3),
            "cpu_over_seconds": round(res.cpu_seconds - limits.cpu_seconds, 3)}


def escaping_daemon(layer: str, base: Path) -> dict[str, Any]:
    """A double-forked, setsid grandchild left behind by a step that exits 0."""
    progress, pidfile = base / "progress", base / "grandchild.pid"
    res, end, spy = _run(layer, DAEMON.format(progress=str(progress), pidfile=str(pidfile)),
                         Limits(wall_seconds=120), base)
    marks = _progress(progress)
    done = Path(str(pidfile) + ".done")
    pid = int(done.read_text()) if done.exists() else None
    return {**_common("escaping_daemon", res, spy),
            "kill_seconds": round(end - marks[0][0], 3) if marks else None,
            "grandchild_pid": pid, "grandchild_alive": pid is not None and _alive(pid)}


def output_flood(layer: str, base: Path) -> dict[str, Any]:
    """1 MiB writes towards 300 MiB in the output dir, against the default 100 MiB cap."""
    limits = Limits(wall_seconds=120)
    progress = base / "progress"
    out = base / "ws"
    (out / "home").mkdir(parents=True)
    env = sandbox.safe_env({}, home=out / "home")
    spy = KernelSpy()
    with spy.active():
        res = sandbox.run([PY, "-c", FLOOD.format(progress=str(progress), stop=300 * MiB)], out, env, limits,
                          layer=layer, output_root=out)
    end = time.monotonic()
    marks = _progress(progress)
    crossed = next((t for t, n in marks if n > limits.output_bytes), end)
    reached = marks[-1][1] if marks else 0
    return {**_common("output_flood", res, spy), "kill_seconds": round(end - crossed, 3),
            "written_mb": round(reached / MiB), "overshoot_mb": round((reached - limits.output_bytes) / MiB)}


SCENARIOS: dict[str, Callable[[str, Path], dict[str, Any]]] = {
    "memory_hog": memory_hog,
    "fork_bomb": fork_bomb,
    "cpu_spinner": cpu_spinner,
    "escaping_daemon": escaping_daemon,
    "output_flood": output_flood,
}


def where() -> dict[str, Any]:
    """The host as the sandbox sees it: kernel, cgroup mounts, the layer `auto` picks and why."""
    mounts = [line.split(" - ")[1].split()[0] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if " - cgroup" in line]
    return {
        "kernel": platform.release(),
        "cgroup_mounts": mounts,
        "auto_layer": sandbox.select_layer(),
        "v2_why": layer_availability("cgroup_v2").why,
        "self_cgroup": Path("/proc/self/cgroup").read_text().strip(),
        "uid": os.getuid(),
    }


def leftover_cgroups() -> list[str]:
    """Build cgroups still present under the v2 layer's parent (none may outlive its run)."""
    if not layer_availability("cgroup_v2").available:
        return []
    from sandbox.layers.cgroup_v2 import delegated_parent

    base = delegated_parent() / cgfs.PARENT_NAME
    return sorted(str(p) for p in base.iterdir() if p.is_dir())


def run_all(layers: list[str], out: Path, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every scenario on every layer but `skip` ("layer/scenario"); the JSON is rewritten after each one, so a
    crash keeps what ran."""
    report: dict[str, Any] = {"where": where(), "runs": [], "leftover_cgroups": None}
    for layer in layers:
        for name, scenario in SCENARIOS.items():
            if f"{layer}/{name}" in skip:
                continue
            base = Path(tempfile.mkdtemp(prefix=f"{name}-"))
            try:
                t0 = time.monotonic()
                row = scenario(layer, base)
                row["scenario_seconds"] = round(time.monotonic() - t0, 2)
            except Exception as err:  # recorded, so the host-side test names what broke
                row = {"scenario": name, "layer": layer, "error": f"{type(err).__name__}: {err}"}
            row["requested_layer"] = layer
            report["runs"].append(row)
            out.write_text(json.dumps(report, indent=1))
            print(json.dumps(row), flush=True)
            shutil.rmtree(base, ignore_errors=True)
    report["leftover_cgroups"] = leftover_cgroups()
    out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    args = sys.argv[2:]
    run_all([a for a in args if not a.startswith("-")], Path(sys.argv[1]),
            frozenset(a[1:] for a in args if a.startswith("-")))
