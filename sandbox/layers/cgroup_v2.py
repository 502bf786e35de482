"""cgroup v2 layer: a delegated subtree with memory.max (no swap), pids.max, cpu.stat budget, cgroup.kill."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from sandbox.layers import cgfs
from sandbox.layers.base import Availability, LaunchPlan, Usage
from sandbox.limits import Limits

NEEDED = ("memory", "pids")
_setup_lock = threading.Lock()
_parent: Path | None = None


def _controllers(cg: Path) -> set[str]:
    return set(cgfs.read_text(cg / "cgroup.controllers").split())


def availability() -> Availability:
    """Available when our v2 cgroup offers memory+pids and we may write to it (systemd Delegate=yes)."""
    self_dir = cgfs.v2_self_dir()
    if self_dir is None:
        return Availability(False, "no cgroup2 tree mounted")
    have = _controllers(self_dir)
    missing = [c for c in NEEDED if c not in have]
    if missing:
        return Availability(
            False,
            f"cgroup2 tree at {self_dir} lacks the {', '.join(missing)} controller(s) "
            f"(offers: {', '.join(sorted(have)) or 'none'}; on hybrid hosts they are bound to v1)",
        )
    try:
        parent = delegated_parent()
    except OSError as err:
        return Availability(False, f"cgroup2 subtree at {self_dir} is not delegated to us: {err}")
    return Availability(True, f"delegated cgroup2 subtree writable at {parent / cgfs.PARENT_NAME}")


def delegated_parent() -> Path:
    """Return the cgroup under which <previewd>/<build> cgroups go, enabling controllers once.

    The no-internal-processes rule forbids enabling controllers for children of a cgroup that holds
    processes, so (unless we sit at the root) the daemon moves itself into a `daemon` leaf first.
    """
    global _parent
    with _setup_lock:
        if _parent is not None:
            return _parent
        self_dir = cgfs.v2_self_dir()
        if self_dir is None:
            raise OSError("no cgroup2 tree mounted")
        unit = self_dir.parent if self_dir.name == "daemon" else self_dir
        is_root = not (unit / "cgroup.type").exists()
        enable = " ".join(f"+{c}" for c in NEEDED)
        if not is_root and self_dir == unit:
            leaf = unit / "daemon"
            leaf.mkdir(exist_ok=True)
            cgfs.write(leaf / "cgroup.procs", "0")
        cgfs.write(unit / "cgroup.subtree_control", enable)
        base = unit / cgfs.PARENT_NAME
        base.mkdir(exist_ok=True)
        cgfs.write(base / "cgroup.subtree_control", enable)
        _parent = unit
        return unit


class CgroupV2Layer:
    """Kernel-enforced memory and pids; CPU budget polled from cpu.stat; kill by cgroup.kill."""

    name = "cgroup_v2"
    kernel_memory = True
    kernel_pids = True
    interval = 0.1

    def __init__(self) -> None:
        self.cg: Path | None = None
        self._peak = 0
        self.root: int | None = None

    def prepare(self, limits: Limits) -> LaunchPlan:
        """Create the build cgroup with its limits; the launcher joins it before exec."""
        cg = cgfs.make_child(delegated_parent())
        self.cg = cg
        cgfs.write(cg / "memory.max", str(limits.memory_bytes))
        if (cg / "memory.swap.max").exists():
            cgfs.write(cg / "memory.swap.max", "0")
        with contextlib.suppress(OSError):
            cgfs.write(cg / "memory.oom.group", "1")
        cgfs.write(cg / "pids.max", str(limits.pids))
        return LaunchPlan(cgroup_procs=[str(cg / "cgroup.procs")])

    def attach(self, pid: int) -> None:
        """Remember the direct child (the runner reaps it); the launcher placed itself before exec."""
        self.root = pid

    def add_reaped(self, cpu_seconds: float) -> None:
        """Ignored: cpu.stat already counts every task that ever ran in the cgroup."""

    def sample(self) -> Usage:
        """Read cpu.stat, memory.current/peak/events and pids.current/events."""
        assert self.cg is not None
        cg = self.cg
        cpu = cgfs.read_kv(cg / "cpu.stat").get("usage_usec", 0) / 1e6
        mem = cgfs.read_int(cg / "memory.current")
        self._peak = max(self._peak, mem, cgfs.read_int(cg / "memory.peak"))
        events = cgfs.read_kv(cg / "memory.events")
        tasks = cgfs.read_int(cg / "pids.current")
        return Usage(
            cpu_seconds=cpu,
            memory_bytes=mem,
            peak_memory_bytes=self._peak,
            tasks=tasks,
            peak_tasks=max(tasks, cgfs.read_int(cg / "pids.peak")),
            oom_killed=events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0,
            pids_denied=cgfs.read_kv(cg / "pids.events").get("max", 0) > 0,
        )

    def kill(self) -> None:
        """cgroup.kill, then wait for `populated 0`."""
        if self.cg is not None:
            cgfs.kill_v2(self.cg, keep=self.root)

    def cleanup(self) -> None:
        """Remove the build cgroup."""
        if self.cg is not None:
            cgfs.kill_v1(self.cg, timeout=1.0, keep=self.root)
            cgfs.remove(self.cg)
