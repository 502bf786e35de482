"""cgroup v1 layer: v1 memory and pids hierarchies, CPU budget and kill from the v2 tree when hybrid."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sandbox.layers import cgfs
from sandbox.layers.base import Availability, LaunchPlan, Usage
from sandbox.limits import Limits


def _unified_usable() -> tuple[bool, str]:
    parent = cgfs.v2_self_dir()
    if parent is None:
        return False, "no cgroup2 tree"
    return cgfs.writable_parent(parent)


def availability() -> Availability:
    """Available when the v1 memory and pids hierarchies let us create cgroups, plus a CPU/kill source."""
    parts = []
    for ctrl in ("memory", "pids"):
        ok, why = cgfs.writable_parent(cgfs.v1_self_dir(ctrl))
        if not ok:
            return Availability(False, f"v1 {ctrl} hierarchy unusable: {why}")
        parts.append(f"{ctrl} at {why}")
    uni_ok, uni_why = _unified_usable()
    if uni_ok:
        parts.append(f"CPU budget and cgroup.kill from the cgroup2 tree at {uni_why}")
    else:
        ok, why = cgfs.writable_parent(cgfs.v1_self_dir("cpuacct"))
        if not ok:
            return Availability(False, f"no CPU accounting: cgroup2 tree {uni_why}; v1 cpuacct {why}")
        parts.append(f"CPU budget from v1 cpuacct at {why}; kill by freeze+SIGKILL")
    return Availability(True, "v1 " + "; ".join(parts))


class CgroupV1Layer:
    """Kernel-enforced memory (memsw too) and pids; CPU from cpu.stat/cpuacct; kill by cgroup.kill/freezer."""

    name = "cgroup_v1"
    kernel_memory = True
    kernel_pids = True
    interval = 0.1

    def __init__(self, use_unified: bool = True) -> None:
        self.use_unified = use_unified
        self.mem: Path | None = None
        self.pids: Path | None = None
        self.uni: Path | None = None
        self.cpuacct: Path | None = None
        self.freezer: Path | None = None
        self._made: list[Path] = []
        self.root: int | None = None

    def _make(self, parent: Path | None, what: str) -> Path:
        if parent is None:
            raise OSError(f"v1 {what} hierarchy not mounted")
        cg = cgfs.make_child(parent)
        self._made.append(cg)
        return cg

    def prepare(self, limits: Limits) -> LaunchPlan:
        """Create one cgroup per hierarchy, set memory/memsw/pids limits; the launcher joins them all."""
        self.mem = self._make(cgfs.v1_self_dir("memory"), "memory")
        cgfs.write(self.mem / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (self.mem / "memory.memsw.limit_in_bytes").exists():
            # memsw = memory means no swap escape.
            cgfs.write(self.mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        with contextlib.suppress(OSError):
            cgfs.write(self.mem / "memory.swappiness", "0")
        self.pids = self._make(cgfs.v1_self_dir("pids"), "pids")
        cgfs.write(self.pids / "pids.max", str(limits.pids))
        uni_parent = cgfs.v2_self_dir() if self.use_unified else None
        if uni_parent is not None:
            self.uni = self._make(uni_parent, "cgroup2")
        else:
            self.cpuacct = self._make(cgfs.v1_self_dir("cpuacct"), "cpuacct")
            freezer_parent = cgfs.v1_self_dir("freezer")
            if freezer_parent is not None:
                self.freezer = self._make(freezer_parent, "freezer")
        return LaunchPlan(cgroup_procs=[str(cg / "cgroup.procs") for cg in self._made])

    def attach(self, pid: int) -> None:
        """Remember the direct child (the runner reaps it); the launcher placed itself before exec."""
        self.root = pid

    def add_reaped(self, cpu_seconds: float) -> None:
        """Ignored: the cgroup counts every task that ever ran in it."""

    def sample(self) -> Usage:
        """Read CPU usage, memory usage/peak/oom_kill and pids.current/events."""
        assert self.mem is not None and self.pids is not None
        if self.uni is not None:
            cpu = cgfs.read_kv(self.uni / "cpu.stat").get("usage_usec", 0) / 1e6
        else:
            assert self.cpuacct is not None
            cpu = cgfs.read_int(self.cpuacct / "cpuacct.usage") / 1e9
        mem = cgfs.read_int(self.mem / "memory.usage_in_bytes")
        peak = max(mem, cgfs.read_int(self.mem / "memory.max_usage_in_bytes"))
        tasks = cgfs.read_int(self.pids / "pids.current")
        return Usage(
            cpu_seconds=cpu,
            memory_bytes=mem,
            peak_memory_bytes=peak,
            tasks=tasks,
            peak_tasks=max(tasks, cgfs.read_int(self.pids / "pids.peak")),
            oom_killed=cgfs.read_kv(self.mem / "memory.oom_control").get("oom_kill", 0) > 0,
            pids_denied=cgfs.read_kv(self.pids / "pids.events").get("max", 0) > 0,
        )

    def kill(self) -> None:
        """cgroup.kill on the v2 twin when hybrid; otherwise freeze + SIGKILL until the memory cgroup empties."""
        if self.uni is not None:
            cgfs.kill_v2(self.uni, keep=self.root)
        if self.mem is not None:
            cgfs.kill_v1(self.mem, self.freezer, keep=self.root)

    def cleanup(self) -> None:
        """Remove every cgroup this run created."""
        for cg in reversed(self._made):
            cgfs.kill_v1(cg, timeout=1.0, keep=self.root)
            cgfs.remove(cg)
