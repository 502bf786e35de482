"""Watchdog layer (no cgroups): a /proc sampler over a new session, with the supervisor as child subreaper.

Soft limits: CPU is the sum over live descendants (plus what they reaped and what we reaped), memory the
sum of PSS, tasks the sum of threads, each sampled every `interval`. A setsid + double fork cannot escape:
as a child subreaper we adopt the orphans, and they carry a per-run token in their environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import time
from dataclasses import dataclass

from sandbox.layers.base import Availability, LaunchPlan, Usage
from sandbox.limits import Limits

PR_SET_CHILD_SUBREAPER = 36
TOKEN_VAR = "PREVIEWD_SANDBOX_RUN"
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the watchdog needs."""

    pid: int
    ppid: int
    sid: int
    state: str
    cpu_seconds: float  # utime + stime + cutime + cstime
    threads: int
    start: int  # starttime in ticks; (pid, start) names a process across pid reuse


def read_stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None when the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    f2 = data[data.rindex(b")") + 2 :].split()
    ticks = int(f2[11]) + int(f2[12]) + int(f2[13]) + int(f2[14])
    return ProcStat(pid, int(f2[1]), int(f2[3]), f2[0].decode(), ticks / _TICK, int(f2[17]), int(f2[19]))


def scan_all(skip: set[int] | frozenset[int] = frozenset()) -> dict[int, ProcStat]:
    """Every process on the host (its stat line), except the pids in `skip`."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            pid = int(name)
            if pid in skip:
                continue
            st = read_stat(pid)
            if st is not None:
                out[pid] = st
    return out


def pss_bytes(pid: int) -> int:
    """Proportional set size (RSS double-counts shared pages); RSS when smaps_rollup is unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def has_token(pid: int, token: bytes) -> bool:
    """True when the process's environment carries this run's token."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return token in f.read().split(b"\0")
    except OSError:
        return False


def set_subreaper() -> bool:
    """Make this process a child subreaper so orphans of the tree are re-parented to us, not init."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def availability() -> Availability:
    """Always available on Linux with /proc."""
    if not os.path.exists("/proc/self/stat"):
        return Availability(False, "no /proc")
    return Availability(True, "psutil-style /proc sampler over a new session with PR_SET_CHILD_SUBREAPER")


class WatchdogLayer:
    """Sampled limits; kill by SIGSTOP-all, SIGKILL-all, repeat until no tree member lives."""

    name = "watchdog"
    kernel_memory = False
    kernel_pids = False
    interval = 0.25
    FULL_SCAN_EVERY = 5  # samples; in between, processes already seen outside the tree are not re-read

    def __init__(self) -> None:
        self.root: int | None = None
        self.token = secrets.token_hex(12)
        self._marker = f"{TOKEN_VAR}={self.token}".encode()
        self._known: set[tuple[int, int]] = set()
        self._foreign: set[tuple[int, int]] = set()
        self._sids: set[int] = set()
        self._reaped = 0.0
        self._cpu = 0.0
        self._peak = 0
        self._peak_tasks = 0
        self._me = os.getpid()
        self._outside: set[int] = set()
        self._samples = 0

    def prepare(self, limits: Limits) -> LaunchPlan:
        """Become a subreaper; the child gets the run token and a per-process RLIMIT_DATA backstop."""
        if not set_subreaper():
            raise OSError("prctl(PR_SET_CHILD_SUBREAPER) failed")
        # RLIMIT_DATA, not RLIMIT_AS (V8 reserves ~10 GB of address space). Per process, and well above
        # the tree limit so that the sampler, which names the breach, acts first on a hog that holds memory.
        return LaunchPlan(rlimits={"DATA": 3 * limits.memory_bytes}, env={TOKEN_VAR: self.token})

    def attach(self, pid: int) -> None:
        """Record the direct child (the session leader)."""
        self.root = pid
        self._sids.add(pid)

    def add_reaped(self, cpu_seconds: float) -> None:
        """CPU of a tree member reaped by the supervisor (its times leave /proc)."""
        self._reaped += cpu_seconds

    def _tree(self, stats: dict[int, ProcStat], thorough: bool = False) -> list[ProcStat]:
        children: dict[int, list[int]] = {}
        for st in stats.values():
            children.setdefault(st.ppid, []).append(st.pid)
        roots = []
        if self.root is not None and self.root in stats:
            roots.append(self.root)
        candidates = stats.values() if thorough else (stats[p] for p in children.get(self._me, []))
        for st in candidates:
            if st.pid == self.root or st.pid == self._me:
                continue
            key = (st.pid, st.start)
            if key in self._known or st.sid in self._sids:
                roots.append(st.pid)
            elif key not in self._foreign:
                if has_token(st.pid, self._marker):
                    roots.append(st.pid)
                elif st.ppid == self._me:
                    self._foreign.add(key)
        seen: set[int] = set()
        out: list[ProcStat] = []
        stack = roots
        while stack:
            pid = stack.pop()
            if pid in seen or pid == self._me:
                continue
            seen.add(pid)
            st = stats[pid]
            out.append(st)
            self._known.add((pid, st.start))
            stack.extend(children.get(pid, []))
        return out

    def _reap_adopted(self, tree: list[ProcStat]) -> None:
        for st in tree:
            if st.ppid == self._me and st.pid != self.root and st.state == "Z":
                with contextlib.suppress(ChildProcessError):
                    pid, _status, ru = os.wait4(st.pid, os.WNOHANG)
                    if pid:
                        self._reaped += ru.ru_utime + ru.ru_stime

    def sample(self) -> Usage:
        """One pass over /proc: the tree's CPU, PSS and thread count.

        A process outside the tree cannot join it (only new processes and adopted orphans can, and both
        get read), so between full scans those are skipped: it keeps our own CPU use near 1% of a core.
        A pid reused by a tree process is caught at the next full scan, and by the kill's thorough pass.
        """
        full = self._samples % self.FULL_SCAN_EVERY == 0
        self._samples += 1
        stats = scan_all(frozenset() if full else self._outside)
        tree = self._tree(stats)
        members = {st.pid for st in tree}
        self._outside = (set(stats) if full else self._outside | set(stats)) - members
        live = [st for st in tree if st.state != "Z"]
        cpu = sum(st.cpu_seconds for st in tree) + self._reaped
        # Monotonic: a member that dies unreaped for a moment must not make the total go backwards.
        self._cpu = max(self._cpu, cpu)
        mem = sum(pss_bytes(st.pid) for st in live)
        tasks = sum(st.threads for st in live)
        self._peak = max(self._peak, mem)
        self._peak_tasks = max(self._peak_tasks, tasks)
        self._reap_adopted(tree)
        return Usage(
            cpu_seconds=self._cpu,
            memory_bytes=mem,
            peak_memory_bytes=self._peak,
            tasks=tasks,
            peak_tasks=self._peak_tasks,
        )

    def kill(self, timeout: float = 5.0) -> None:
        """Stop every member (so none can fork), kill them all, reap our adopted zombies; until none live."""
        deadline = time.monotonic() + timeout
        while True:
            tree = self._tree(scan_all(), thorough=True)
            live = [st for st in tree if st.state != "Z"]
            if not live or time.monotonic() > deadline:
                self._reap_adopted(tree)
                return
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for st in live:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(st.pid, sig)
            time.sleep(0.005)
            self._reap_adopted(self._tree(scan_all()))

    def cleanup(self) -> None:
        """Nothing to remove; the subreaper flag stays on for the process."""
