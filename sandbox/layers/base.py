"""The Layer seam: how one enforcement mechanism places, measures and kills a process tree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sandbox.limits import Limits


@dataclass(frozen=True)
class Availability:
    """Whether a layer can run on this host, and why (shown by `previewd doctor`)."""

    available: bool
    why: str


@dataclass
class Usage:
    """One sample of the tree. `oom_killed`/`pids_denied` mean the kernel already enforced that limit."""

    cpu_seconds: float = 0.0
    memory_bytes: int = 0
    peak_memory_bytes: int = 0
    tasks: int = 0
    peak_tasks: int = 0
    oom_killed: bool = False
    pids_denied: bool = False


@dataclass
class LaunchPlan:
    """What the launcher must do before exec: cgroup.procs files to join and rlimits to set."""

    cgroup_procs: list[str] = field(default_factory=list)
    rlimits: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # added to the child's environment


class Layer(Protocol):
    """One run's enforcement. Lifecycle: prepare -> attach -> sample* -> kill -> cleanup.

    `prepare` may raise OSError (setup failed); `sample`, `kill` and `cleanup` never raise for anything the
    child does. `kill` returns only once no process of the tree is left (or after a bounded wait).
    """

    name: str
    # Enforced by the kernel (cgroups) rather than by comparing samples with the limit.
    kernel_memory: bool
    kernel_pids: bool
    interval: float  # seconds between samples

    def prepare(self, limits: Limits) -> LaunchPlan: ...

    def attach(self, pid: int) -> None: ...

    def sample(self) -> Usage: ...

    def add_reaped(self, cpu_seconds: float) -> None: ...

    def kill(self) -> None: ...

    def cleanup(self) -> None: ...
