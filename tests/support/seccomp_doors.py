"""Knock on the kernel's rarer doors from inside a sandbox and print one JSON object: door -> outcome.

Stdlib only (run with the system python3 as the build user, or copied into a generated project). An outcome is
"ok" when the call worked, the errno's name ("EPERM", "ENOSYS", ...) when it failed, or "killed:SIGSYS" when the
kernel killed the process that made it. Nothing here is harmful when it works: namespaces, keyrings, io_uring
and perf counters made here die with the process.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time

NR = {
    "x86_64": {"clone": 56, "clone3": 435, "unshare": 272, "mount": 165, "bpf": 321, "perf_event_open": 298,
               "keyctl": 250, "ptrace": 101, "process_vm_readv": 310, "kexec_load": 246, "init_module": 175,
               "io_uring_setup": 425, "userfaultfd": 323, "ioctl": 16, "socket": 41, "personality": 135,
               "getpid": 39, "setns": 308},
    "aarch64": {"clone": 220, "clone3": 435, "unshare": 97, "mount": 40, "bpf": 280, "perf_event_open": 241,
                "keyctl": 219, "ptrace": 117, "process_vm_readv": 270, "kexec_load": 104, "init_module": 105,
                "io_uring_setup": 425, "userfaultfd": 282, "ioctl": 29, "socket": 198, "personality": 92,
                "getpid": 172, "setns": 268},
}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, CLONE_NEWNS, CLONE_FS, SIGCHLD = 0x10000000, 0x00020000, 0x00000200, 17


def sys_(name: str, *args: int) -> int:
    ctypes.set_errno(0)
    return int(libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args]))


def outcome(ret: int) -> str:
    if ret >= 0:
        return "ok"
    e = ctypes.get_errno()
    return errno.errorcode.get(e, str(e))


def forking(name: str, *args: int) -> str:
    """A call that makes a process (clone, clone3): the new one leaves at once."""
    ret = sys_(name, *args)
    if ret == 0:
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
    return outcome(ret)


def in_child(fn: object) -> str:
    """Run fn() in a forked child; its outcome, or how the kernel killed it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, fn().encode())  # type: ignore[operator]
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "killed:" + signal.Signals(os.WTERMSIG(status)).name
    return out


def perf() -> str:
    attr = (ctypes.c_uint8 * 128)()
    ctypes.memmove(attr, (1).to_bytes(4, "little") + (128).to_bytes(4, "little") + (1).to_bytes(8, "little"), 16)
    attr[40] = (1 << 5) | (1 << 6)  # exclude_kernel, exclude_hv: what an unprivileged process may count
    ret = sys_("perf_event_open", ctypes.addressof(attr), 0, -1, -1, 0)
    return outcome(ret)


def io_uring() -> str:
    params = (ctypes.c_uint8 * 120)()
    return outcome(sys_("io_uring_setup", 1, ctypes.addressof(params)))


def ptrace_sibling() -> str:
    """One process of the build attaches to another (its sibling): both children of this script."""
    sibling = subprocess.Popen(["sleep", "30"])
    try:
        def attach() -> str:
            ret = sys_("ptrace", 16, sibling.pid, 0, 0)  # PTRACE_ATTACH
            res = outcome(ret)
            if ret == 0:
                sys_("ptrace", 17, sibling.pid, 0, 0)  # PTRACE_DETACH
            return res
        return in_child(attach)
    finally:
        sibling.kill()
        sibling.wait()


def vm_read_sibling() -> str:
    sibling = subprocess.Popen(["sleep", "30"])
    try:
        buf = ctypes.create_string_buffer(8)
        local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
        remote = (ctypes.c_void_p * 2)(0x400000, 8)
        return outcome(sys_("process_vm_readv", sibling.pid, ctypes.addressof(local), 1, ctypes.addressof(remote),
                            1, 0))
    finally:
        sibling.kill()
        sibling.wait()


def socket_vsock() -> str:
    fd = sys_("socket", 40, 1, 0)  # AF_VSOCK
    if fd >= 0:
        os.close(fd)
    return outcome(fd)


def doors() -> dict[str, str]:
    """Each door knocked on once, each in a child of its own (a door that opens changes the process)."""
    if os.geteuid() == 0:
        raise SystemExit("run the doors as the build user: as root, an open door would change this host")
    clone_args = (ctypes.c_uint64 * 11)()
    clone_args[4] = SIGCHLD  # exit_signal
    keep: list[object] = []

    def buf(b: bytes) -> int:
        keep.append(ctypes.create_string_buffer(b))
        return ctypes.addressof(keep[-1])

    knocks = {
        "unshare_user": lambda: outcome(sys_("unshare", CLONE_NEWUSER)),
        "unshare_mount": lambda: outcome(sys_("unshare", CLONE_NEWNS)),
        "clone_newuser": lambda: forking("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
        "clone3": lambda: forking("clone3", ctypes.addressof(clone_args), 88),
        "setns": lambda: outcome(sys_("setns", os.open("/proc/self/ns/uts", os.O_RDONLY), 0)),
        "mount": lambda: outcome(sys_("mount", buf(b"none"), buf(b"/tmp"), buf(b"tmpfs"), 0, 0)),
        "bpf": lambda: outcome(sys_("bpf", 0, buf(bytes((ctypes.c_uint32 * 16)(2, 4, 4, 1))), 64)),
        "perf_event_open": perf,
        "keyctl": lambda: outcome(sys_("keyctl", 0, -2, 1)),  # KEYCTL_GET_KEYRING_ID, process keyring, create
        "ptrace_sibling": ptrace_sibling,
        "process_vm_readv": vm_read_sibling,
        "kexec_load": lambda: outcome(sys_("kexec_load", 0, 0, 0, 0)),
        "init_module": lambda: outcome(sys_("init_module", buf(bytes(64)), 64, buf(b""))),
        "io_uring_setup": io_uring,
        "userfaultfd": lambda: outcome(sys_("userfaultfd", 1)),  # UFFD_USER_MODE_ONLY: allowed unprivileged
        "tiocsti": lambda: outcome(sys_("ioctl", 0, 0x5412, buf(b"x"))),
        "socket_vsock": socket_vsock,
        "personality_no_aslr": lambda: outcome(sys_("personality", 0x0040000)),
    }
    if platform.machine() == "x86_64":
        knocks["x32_abi"] = lambda: outcome(int(libc.syscall(ctypes.c_long(NR["getpid"] | 0x40000000))))
    return {name: in_child(fn) for name, fn in knocks.items()}


def still_works() -> dict[str, str]:
    """What builds do every day, under the same filter."""
    r, _w = os.pipe()
    n = ctypes.c_int(0)
    sock = sys_("socket", 2, 1, 0)  # AF_INET stream
    if sock >= 0:
        os.close(sock)
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append("ok"))
    t.start()
    t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    return {
        "fork": "ok" if os.waitstatus_to_exitcode(status) == 7 else str(status),
        "thread": box[0] if box else "no",
        "subprocess": "ok" if subprocess.run(["true"]).returncode == 0 else "no",
        "unshare_fs": outcome(sys_("unshare", CLONE_FS)),
        "socket_inet": outcome(sock),
        "ioctl_fionread": outcome(sys_("ioctl", r, 0x541B, ctypes.addressof(n))),
        "personality_query": "ok" if sys_("personality", 0xFFFFFFFF) >= 0 else outcome(-1),
        "getpid": "ok" if sys_("getpid") == os.getpid() else "no",
        "sleep": "ok" if time.sleep(0.01) is None else "no",
    }


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "doors"
    print(json.dumps(doors() if which == "doors" else still_works(), sort_keys=True))
