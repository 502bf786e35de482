"""Result of one sandboxed run, the reason codes, and the human formatting of figures."""

from __future__ import annotations

from dataclasses import dataclass

OK = "ok"
EXIT_NONZERO = "exit_nonzero"
CPU_LIMIT = "cpu_limit"
MEMORY_LIMIT = "memory_limit"
OUTPUT_LIMIT = "output_limit"
TIMEOUT = "timeout"
PIDS_LIMIT = "pids_limit"
DISK_LIMIT = "disk_limit"  # everything the step may write (its disk roots) passed the disk cap
CANCELLED = "cancelled"  # the caller asked the run to stop (daemon shutdown past its grace period)
REASONS = (OK, EXIT_NONZERO, CPU_LIMIT, MEMORY_LIMIT, OUTPUT_LIMIT, TIMEOUT, PIDS_LIMIT, DISK_LIMIT, CANCELLED)
BREACHES = (CPU_LIMIT, MEMORY_LIMIT, OUTPUT_LIMIT, TIMEOUT, PIDS_LIMIT, DISK_LIMIT)


@dataclass(frozen=True)
class Result:
    """What happened: exit code (None when killed by a signal), why it ended, and tree-wide figures."""

    exit_code: int | None
    reason: str  # one of REASONS
    cpu_seconds: float
    # The step's own: its cgroup's high-water mark, else the watchdog's sampled maximum (0 for a run over before
    # the first 0.25 s sample). Never wait4's ru_maxrss, which starts at the spawner's (the daemon's) own.
    peak_memory_bytes: int
    output_bytes: int
    wall_seconds: float
    log_truncated: bool
    detail: str  # one human line, e.g. "memory_limit: tree reached 1.00 GiB (limit 1.00 GiB)"
    layer: str  # which layer enforced it: cgroup_v2 | cgroup_v1 | watchdog
    disk_bytes: int = 0  # what the run's disk roots held at the end (plus disk_base), when it had any

    @property
    def ok(self) -> bool:
        """True when the command exited 0 within every limit."""
        return self.reason == OK


def fmt_bytes(n: float) -> str:
    """Format a byte count with a binary unit, e.g. 1.00 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"  # pragma: no cover - loop always returns
