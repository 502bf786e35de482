"""Limits: the hard caps one sandboxed command runs under, all over its whole process tree."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    """Caps for one `run`; every field must be positive. Defaults match the seed's build limits."""

    cpu_seconds: float = 300.0  # summed over the whole process tree
    memory_bytes: int = 1 << 30  # whole tree, no swap escape
    output_bytes: int = 100 * 2**20  # bytes written under output_root (minus excluded dirs) + captured log
    wall_seconds: float = 600.0
    pids: int = 512  # tasks (threads count, as in the pids controller)
    log_bytes: int = 8 * 2**20  # captured log cap; past it lines are dropped and one notice is emitted
    disk_bytes: int = 2 * 2**30  # all a run's disk roots may hold (see run(disk_roots=...)), links not followed

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"Limits.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive finite number, got {value!r}")
            if f.type in ("int", int) and not isinstance(value, int):
                raise ValueError(f"Limits.{f.name} must be an integer, got {value!r}")
