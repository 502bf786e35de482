"""Trusted launcher run between fork and the untrusted exec: joins cgroups, sets rlimits, drops privileges.

Run as `python -I -S launcher.py <spec-json> <argv...>` with the daemon's uid. Stdlib only: it is executed
by path, not imported, so it must not depend on the `sandbox` package. Any setup failure is written to the
status fd (close-on-exec) and the launcher exits 127; a successful exec closes that fd with nothing written.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import warnings  # noqa: F401  os.execvp imports it lazily, when a dropped uid may no longer read the stdlib

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_RLIMITS = {
    "FSIZE": resource.RLIMIT_FSIZE,
    "CPU": resource.RLIMIT_CPU,
    "DATA": resource.RLIMIT_DATA,
    "CORE": resource.RLIMIT_CORE,
    "NOFILE": resource.RLIMIT_NOFILE,
}


def _fail(status_fd: int, stage: str, err: BaseException) -> None:
    msg = f"{stage}: {err}".encode(errors="replace")
    try:
        os.write(status_fd, msg)
    finally:
        os._exit(127)


def _libc():  # type: ignore[no-untyped-def]
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what} failed: {os.strerror(errno)}")


def _seccomp(libc, program: bytes) -> None:  # type: ignore[no-untyped-def]
    """Install a classic-BPF filter on this process (no_new_privs must be set): it outlives the exec."""
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.addressof(buf))
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "prctl(SECCOMP)")


def main() -> None:
    """Apply the spec in argv[1], then exec argv[2:] with the environment we were given."""
    spec = json.loads(sys.argv[1])
    argv = sys.argv[2:]
    status_fd = int(spec["status_fd"])
    # pass_fds made it inheritable; it must close on exec so that EOF means "exec succeeded".
    os.set_inheritable(status_fd, False)
    stage = "start"
    try:
        stage = "join cgroup"
        for procs in spec.get("cgroup_procs", []):
            # "0" means the writing process: this launcher, before any untrusted code runs.
            with open(procs, "w") as f:
                f.write("0")
        stage = "oom_score_adj"
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        if spec.get("nice"):
            stage = "nice"
            os.nice(int(spec["nice"]))
        stage = "setrlimit"
        for name, value in spec.get("rlimits", {}).items():
            res = _RLIMITS[name]
            want_hard = value
            if name == "CPU":
                # The process's clock already holds this launcher's own start-up (seconds under emulation), and
                # at the hard limit the kernel sends SIGKILL, not SIGXCPU: give the step its full budget and a
                # second between the two, so a step stopped by this backstop is named cpu_limit.
                used = resource.getrusage(resource.RUSAGE_SELF)
                value += math.ceil(used.ru_utime + used.ru_stime)
                want_hard = value + 1
            _soft, hard = resource.getrlimit(res)
            new_hard = want_hard if hard == resource.RLIM_INFINITY or want_hard < hard else hard
            resource.setrlimit(res, (min(value, new_hard), new_hard))
        libc = _libc()
        if spec.get("netns"):
            stage = "unshare network namespace"
            _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        uid = spec.get("uid")
        if uid is not None:
            stage = "switch user"
            os.setgroups([])
            os.setgid(int(spec["gid"]))
            os.setuid(int(uid))
        stage = "prctl"
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        # Set after the uid switch, which clears it. Covers the direct child only; the layers cover the rest.
        _check(libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PDEATHSIG)")
        if spec.get("seccomp"):
            # Last: the filter stays on across the exec (a step without bubblewrap, which applies it otherwise).
            stage = "syscall filter"
            _seccomp(libc, bytes.fromhex(spec["seccomp"]))
        if os.getppid() != int(spec["supervisor_pid"]):
            raise OSError("supervisor exited before exec")
        stage = f"exec {argv[0]!r}"
        os.execvp(argv[0], argv)
    except BaseException as err:
        _fail(status_fd, stage, err)


if __name__ == "__main__":
    main()
