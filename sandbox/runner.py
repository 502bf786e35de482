"""run(): start one command in a fresh layer, stream its lines, enforce the limits, and leave nothing behind.

Long because start, supervision (CPU, memory, output, disk, wall clock) and the classification of how a step
ended share one process's lifetime and its fds: split apart, each piece would pass the others' state around.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox import result as R
from sandbox import seccomp
from sandbox.env import check_env_item
from sandbox.errors import SandboxError
from sandbox.fsview import FsView, bwrap_availability, wrap
from sandbox.layers import Layer, Usage, make_layer
from sandbox.limits import Limits
from sandbox.logsink import LogSink
from sandbox.output import disk_usage
from sandbox.ownership import user_ids
from sandbox.probe import launcher_argv, netns_availability, select_layer, syscall_filter_availability
from sandbox.result import Result, fmt_bytes

READ_CHUNK = 64 * 1024
READS_PER_WAKE = 16  # bound the time spent draining a flood before the next limit check
MIN_SCAN_INTERVAL = 0.5
DISK_SCAN_INTERVAL = 5.0
SCAN_COST_FACTOR = 100  # scan at most 1% of the time: interval >= 100 x the last scan's duration
DRAIN_TIMEOUT = 2.0
FSIZE_FLOOR = 512 * 2**20


@dataclass
class _Spawned:
    proc: subprocess.Popen[bytes]
    out_r: int
    start: float


def _check_args(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], limits: Limits, output_root: Path | None
) -> list[str]:
    if isinstance(argv, str | bytes):
        raise ValueError("argv must be a sequence of strings, not one string")
    args = list(argv)
    if not args:
        raise ValueError("argv is empty: nothing to run")
    for a in args:
        if not isinstance(a, str) or "\0" in a:
            raise ValueError(f"argv items must be str without NUL bytes, got {a!r}")
    if not args[0]:
        raise ValueError("argv[0] is empty")
    if not isinstance(limits, Limits):
        raise ValueError(f"limits must be a sandbox.Limits, got {type(limits).__name__}")
    if not Path(cwd).is_dir():
        raise ValueError(f"cwd {str(cwd)!r} does not exist or is not a directory")
    if output_root is not None and not Path(output_root).is_dir():
        raise ValueError(f"output_root {str(output_root)!r} does not exist or is not a directory")
    for key, value in env.items():
        check_env_item(key, value)
    return args


def _resolve_user(user: str | None) -> tuple[int, int] | None:
    if user is None:
        return None
    try:
        ids = user_ids(user)
    except KeyError:
        raise ValueError(f"unknown user {user!r}") from None
    if os.geteuid() != 0:
        if ids[0] == os.geteuid():
            return None
        raise ValueError(f"cannot run as user {user!r}: switching users needs root")
    return ids


def _exit_code(status: int) -> int | None:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None


def _term_signal(status: int) -> int | None:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


class _Supervisor:
    """State of one run; `run()` below is the public wrapper."""

    def __init__(
        self,
        layer: Layer,
        limits: Limits,
        sink: LogSink,
        output_root: Path | None,
        output_exclude: Sequence[str],
        disk_roots: Sequence[tuple[Path, Sequence[str]]] = (),
        disk_base: int = 0,
    ) -> None:
        self.layer = layer
        self.limits = limits
        self.sink = sink
        self.output_root = output_root
        self.output_exclude = tuple(output_exclude)
        self.baseline = disk_usage(output_root, self.output_exclude) if output_root else 0
        self.written = 0
        self.next_scan = 0.0
        self.disk = _DiskWatch(disk_roots, disk_base, limits.disk_bytes)
        self.usage = Usage()
        self.reason: str | None = None
        self.detail = ""

    def peak(self) -> int:
        """The step's own peak: the cgroup's high-water mark, else the sampler's maximum of the tree's memory.
        Never wait4's ru_maxrss: a child spawned by fork/vfork starts with the spawner's high-water mark, so it
        reported the daemon's own peak as every step's (issue 24)."""
        return self.usage.peak_memory_bytes

    def output_bytes(self) -> int:
        return self.written + self.sink.captured

    def scan_output(self, now: float, force: bool = False) -> None:
        if self.output_root is None or (not force and now < self.next_scan):
            return
        t0 = time.perf_counter()
        self.written = max(0, disk_usage(self.output_root, self.output_exclude) - self.baseline)
        cost = time.perf_counter() - t0
        self.next_scan = now + max(MIN_SCAN_INTERVAL, SCAN_COST_FACTOR * cost)

    def breach(self, reason: str, detail: str) -> None:
        if self.reason is None:
            self.reason, self.detail = reason, f"{reason}: {detail}"

    def check(self, now: float) -> None:
        """Sample the layer and the output dir; record the first limit broken."""
        lim = self.limits
        u = self.usage = self.layer.sample()
        if u.oom_killed:
            self.breach(R.MEMORY_LIMIT, f"tree reached {fmt_bytes(u.peak_memory_bytes)} "
                                        f"(limit {fmt_bytes(lim.memory_bytes)}); the kernel OOM-killed it")
        elif u.memory_bytes > lim.memory_bytes:
            self.breach(R.MEMORY_LIMIT, f"tree reached {fmt_bytes(u.memory_bytes)} "
                                        f"(limit {fmt_bytes(lim.memory_bytes)})")
        elif u.pids_denied:
            self.breach(R.PIDS_LIMIT, f"tree reached {lim.pids} tasks (limit {lim.pids}); a fork was refused")
        elif u.tasks > lim.pids:
            self.breach(R.PIDS_LIMIT, f"tree reached {u.tasks} tasks (limit {lim.pids})")
        elif u.cpu_seconds >= lim.cpu_seconds:
            self.breach(R.CPU_LIMIT, f"tree used {u.cpu_seconds:.2f} s of CPU (limit {lim.cpu_seconds:g} s)")
        if self.reason is None:
            self.scan_output(now)
            if self.output_bytes() > lim.output_bytes:
                self.breach(R.OUTPUT_LIMIT, f"wrote {fmt_bytes(self.output_bytes())} "
                                            f"(limit {fmt_bytes(lim.output_bytes)})")
        if self.reason is None and self.disk.check(now):
            self.breach(R.DISK_LIMIT, self.disk.detail())

    def classify(self, status: int, wall: float) -> tuple[str, str]:
        """Reason and detail: the supervisor's own finding first, then the kernel's, then the exit status."""
        self.check(time.monotonic())  # a last sample after the kill catches OOM/pids events and final CPU
        self.scan_output(0.0, force=True)
        if self.reason is None and self.disk.check(0.0, force=True):
            self.breach(R.DISK_LIMIT, self.disk.detail())
        if self.reason is not None:
            return self.reason, self.detail
        sig = _term_signal(status)
        lim = self.limits
        if sig == signal.SIGXFSZ or self.output_bytes() > lim.output_bytes:
            return R.OUTPUT_LIMIT, (f"output_limit: wrote {fmt_bytes(max(self.output_bytes(), lim.output_bytes))}"
                                    f" (limit {fmt_bytes(lim.output_bytes)})")
        if sig == signal.SIGXCPU:
            return R.CPU_LIMIT, f"cpu_limit: a process hit RLIMIT_CPU (limit {lim.cpu_seconds:g} s)"
        if sig is not None:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            return R.EXIT_NONZERO, f"exit_nonzero: killed by signal {name}"
        code = _exit_code(status)
        if code == 0:
            return R.OK, (f"ok: exit 0 after {wall:.1f} s, {self.usage.cpu_seconds:.2f} s CPU, "
                          f"peak {fmt_bytes(self.peak())}")
        return R.EXIT_NONZERO, f"exit_nonzero: exit code {code}"


class _DiskWatch:
    """The disk cap of one run: what its roots hold, scanned at start, then whenever the file system's used
    space (one statfs per sample) grew enough to possibly pass the cap, and at least every few seconds.

    A scan is the truth (other processes write to the same file system); statfs only says when to scan, so a
    flood is caught within one sample instead of one scan interval.
    """

    def __init__(self, roots: Sequence[tuple[Path, Sequence[str]]], base: int, cap: int) -> None:
        self.roots = [(r, tuple(ex)) for r, ex in roots if r.is_dir() and not r.is_symlink()]
        self.base = base
        self.cap = cap
        self.total = 0
        self.next_scan = 0.0
        self.fs_mark = 0  # file-system used bytes that correspond to self.total
        if self.roots:
            self._scan(time.monotonic())

    def _fs_used(self) -> int:
        try:
            st = os.statvfs(self.roots[0][0])
        except OSError:
            return self.fs_mark
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def _scan(self, now: float) -> None:
        t0 = time.perf_counter()
        self.total = self.base + sum(disk_usage(r, ex) for r, ex in self.roots)
        cost = time.perf_counter() - t0
        self.fs_mark = self._fs_used()
        # statfs catches a flood within a sample, so the periodic scan only backs it up (others may free space
        # while the step writes): rarer than the output scan, which has no such trigger.
        self.next_scan = now + max(DISK_SCAN_INTERVAL, SCAN_COST_FACTOR * cost)

    def check(self, now: float, force: bool = False) -> bool:
        """True when the roots hold more than the cap."""
        if not self.roots:
            return False
        grown = self._fs_used() - self.fs_mark
        if force or now >= self.next_scan or self.total + grown > self.cap:
            self._scan(now)
        return self.total > self.cap

    def detail(self) -> str:
        return f"the step's directories hold {fmt_bytes(self.total)} (limit {fmt_bytes(self.cap)})"


def run(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits,
    *,
    on_line: Callable[[str], None] | None = None,
    network: bool = True,
    output_root: Path | None = None,
    output_exclude: Sequence[str] = ("node_modules",),
    layer: str | None = None,
    user: str | None = None,
    cancel: threading.Event | None = None,
    view: FsView | None = None,
    disk_roots: Sequence[tuple[Path, Sequence[str]]] = (),
    disk_base: int = 0,
    nice: int = 0,
    syscall_filter: bool = True,
    stdin: int | None = None,
    on_spawn: Callable[[int], None] | None = None,
) -> Result:
    """Run argv under `limits` over its whole process tree; return why it ended. No process outlives it.

    `env` is the child's entire environment (build it with safe_env). `on_line` gets each line of merged
    stdout/stderr (decoded, errors="replace", without the newline) as it comes. Raises ValueError for bad
    arguments and SandboxError if the host-side setup fails; never for anything the child does.
    Setting `cancel` kills the tree at the next sample and ends the run with reason `cancelled`.
    With `view`, the run sees the host read-only except the view's writable dirs and its cwd (bubblewrap); where
    bubblewrap cannot run, the log says so and the run goes on without it.
    `disk_roots` are (dir, excluded names) pairs holding everything the run may write to disk: `disk_base` plus
    what they hold (links not followed, every inode at least a block) must stay within `limits.disk_bytes`, else
    the run ends with `disk_limit`. Checked on every sample through the file system's free space (one statfs),
    with a scan of the roots when that could mean a breach, and by periodic scans.
    `nice` lowers the tree's CPU priority (a side job, such as an audit, that must not slow a build beside it).
    `syscall_filter` keeps the tree off the kernel's rarer doors (sandbox.seccomp: no new namespaces, mounts, bpf,
    ptrace, ...): bubblewrap installs it when the run has a view, the launcher otherwise; where the kernel cannot
    take it, the log says so and the run goes on without it.
    `stdin` is an fd the tree reads as its standard input (default: /dev/null); `on_spawn` gets the pid of the
    tree's first process once it runs in the layer (a long-lived step whose caller stops and resumes it).
    """
    args = _check_args(argv, cwd, env, limits, output_root)
    ids = _resolve_user(user)
    layer_name = select_layer(layer)
    lay = make_layer(layer_name)
    sink = LogSink(on_line, limits.log_bytes)
    netns = False
    wrapped = False
    if syscall_filter and not (fav := syscall_filter_availability()).available:
        syscall_filter = False
        if on_line is not None:
            on_line(f"[sandbox] syscall filter unavailable, step runs without it: {fav.why}")
    drop_to: tuple[int, int] | None = None
    if view is not None:
        av = bwrap_availability()
        if av.available:
            # bubblewrap starts as the daemon's uid and drops to the build user inside, after its mounts.
            drop_to, ids = ids, None
            wrapped = True  # bubblewrap also takes the network away when asked
        elif on_line is not None:
            on_line(f"[sandbox] read-only root unavailable, step sees the host filesystem: {av.why}")
    if not network and not wrapped:
        av = netns_availability()
        netns = av.available
        if not netns and on_line is not None:
            on_line(f"[sandbox] network isolation unavailable, step runs with network: {av.why}")
    sup = _Supervisor(lay, limits, sink, Path(output_root) if output_root else None, output_exclude,
                      [(Path(p), tuple(ex)) for p, ex in disk_roots], disk_base)
    try:
        plan = lay.prepare(limits)
    except OSError as err:
        lay.cleanup()
        raise SandboxError(f"{layer_name}: could not prepare the sandbox: {err}", stage="prepare") from err
    spawned: _Spawned | None = None
    filter_fd: int | None = None
    try:
        if view is not None and wrapped:
            # bubblewrap needs mount and namespaces itself: it installs the filter after them, before the exec.
            filter_fd = seccomp.program_fd() if syscall_filter else None
            args = wrap(args, Path(cwd), view, network=network, drop_to=drop_to, seccomp_fd=filter_fd)
        spec = {
            "status_fd": -1,
            "supervisor_pid": os.getpid(),
            "cgroup_procs": plan.cgroup_procs,
            "rlimits": {
                # Per file, so a backstop only; floored because node_modules and the pnpm store (not
                # output) legitimately hold native binaries of 100 MB and more.
                "FSIZE": min(max(limits.output_bytes, FSIZE_FLOOR), limits.disk_bytes) + 1,
                "CPU": math.ceil(limits.cpu_seconds) + 1,  # per process: the layer sums the tree
                "CORE": 0,
                **plan.rlimits,
            },
            "netns": netns,
            "nice": nice,
            "uid": ids[0] if ids else None,
            "gid": ids[1] if ids else None,
            # Without bubblewrap the launcher installs the filter itself, just before the exec.
            "seccomp": seccomp.program().hex() if syscall_filter and not wrapped else None,
        }
        child_env = {**env, **plan.env}
        spawned, early = _spawn(spec, args, Path(cwd), child_env, lay, sink,
                                () if filter_fd is None else (filter_fd,), stdin)
        if filter_fd is not None:  # bubblewrap holds its own copy (and reads it before anything runs)
            os.close(filter_fd)
            filter_fd = None
        if early is not None:
            return early
        if on_spawn is not None:
            on_spawn(spawned.proc.pid)
        return _supervise(sup, spawned, layer_name, cancel)
    finally:
        if filter_fd is not None:
            with contextlib.suppress(OSError):
                os.close(filter_fd)
        lay.kill()
        if spawned is not None:
            with contextlib.suppress(ChildProcessError):
                if spawned.proc.returncode is None:
                    spawned.proc.kill()
                    spawned.proc.wait()
            with contextlib.suppress(OSError):
                os.close(spawned.out_r)
        lay.cleanup()


def _spawn(
    spec: dict[str, object], args: list[str], cwd: Path, env: dict[str, str], lay: Layer, sink: LogSink,
    extra_fds: tuple[int, ...] = (), stdin: int | None = None,
) -> tuple[_Spawned, Result | None]:
    status_r, status_w = os.pipe()
    out_r, out_w = os.pipe()
    spec["status_fd"] = status_w
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            launcher_argv(spec, args),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=out_w,
            stderr=out_w,
            pass_fds=(status_w, *extra_fds),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as err:
        for fd in (status_r, status_w, out_r, out_w):
            os.close(fd)
        raise SandboxError(f"could not start the sandbox launcher: {err}", stage="spawn") from err
    os.close(out_w)
    os.close(status_w)
    lay.attach(proc.pid)
    with os.fdopen(status_r, "rb") as f:
        msg = f.read().decode(errors="replace")  # EOF at exec (close-on-exec) or a setup error
    spawned = _Spawned(proc, out_r, start)
    if not msg:
        return spawned, None
    proc.wait()
    if not msg.startswith("exec "):
        raise SandboxError(f"sandbox launcher failed: {msg}", stage="launch")
    line = f"[sandbox] could not start: {msg}"
    sink.feed(line.encode() + b"\n")
    return spawned, Result(
        exit_code=127, reason=R.EXIT_NONZERO, cpu_seconds=0.0, peak_memory_bytes=0,
        output_bytes=sink.captured, wall_seconds=round(time.monotonic() - start, 3), log_truncated=False,
        detail=f"exit_nonzero: could not start: {msg}", layer=lay.name,
    )


def _drain(sel: selectors.BaseSelector, fd: int, sink: LogSink, limit: int) -> bool:
    """Read what is available (at most `limit` chunks); False at EOF."""
    for _ in range(limit):
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return True
        if not data:
            sel.unregister(fd)
            return False
        sink.feed(data)
    return True


def _supervise(sup: _Supervisor, sp: _Spawned, layer_name: str, cancel: threading.Event | None = None) -> Result:
    proc, lim = sp.proc, sup.limits
    os.set_blocking(sp.out_r, False)
    pidfd = os.pidfd_open(proc.pid)
    sel = selectors.DefaultSelector()
    sel.register(sp.out_r, selectors.EVENT_READ)
    sel.register(pidfd, selectors.EVENT_READ)
    deadline = sp.start + lim.wall_seconds
    next_sample = sp.start + sup.layer.interval
    open_out = True
    exited = False
    try:
        while not exited:
            now = time.monotonic()
            for key, _ in sel.select(max(0.0, min(next_sample, deadline) - now)):
                if key.fd == pidfd:
                    exited = True
                elif open_out:
                    open_out = _drain(sel, sp.out_r, sup.sink, READS_PER_WAKE)
            if exited:
                break
            now = time.monotonic()
            if now >= deadline:
                sup.breach(R.TIMEOUT, f"still running after {now - sp.start:.1f} s "
                                      f"(wall limit {lim.wall_seconds:g} s)")
                break
            if now >= next_sample:
                if cancel is not None and cancel.is_set():
                    sup.breach(R.CANCELLED, f"stopped by the caller after {now - sp.start:.1f} s")
                    break
                sup.check(now)
                next_sample = now + sup.layer.interval
                if sup.reason is not None:
                    break
        # Breach or not, the tree goes now: nothing may outlive the call (double-forked daemons included).
        sup.layer.kill()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        sup.layer.add_reaped(ru.ru_utime + ru.ru_stime)
        sup.layer.kill()  # orphans adopted while the root was dying
        wall = time.monotonic() - sp.start
        end = time.monotonic() + DRAIN_TIMEOUT
        while open_out and time.monotonic() < end:
            if sel.select(max(0.0, end - time.monotonic())):
                open_out = _drain(sel, sp.out_r, sup.sink, READS_PER_WAKE)
        sup.sink.close()
        reason, detail = sup.classify(status, wall)
        return Result(
            exit_code=_exit_code(status),
            reason=reason,
            cpu_seconds=round(sup.usage.cpu_seconds, 3),
            peak_memory_bytes=sup.peak(),
            output_bytes=sup.output_bytes(),
            wall_seconds=round(wall, 3),
            log_truncated=sup.sink.truncated,
            detail=detail,
            layer=layer_name,
            disk_bytes=sup.disk.total,
        )
    finally:
        sel.close()
        os.close(pidfd)
