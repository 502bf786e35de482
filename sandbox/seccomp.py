"""The syscall filter of generated code: a classic-BPF seccomp program that shuts the kernel's rarer doors.

Modelled on Docker's default profile, read as a deny list (what Docker refuses a container without capabilities):
no new namespaces (clone/unshare with a namespace flag, setns; clone3 says ENOSYS so libc falls back to clone, whose
flags a filter can read), no mounts, no BPF, perf, keyrings, io_uring or userfaultfd, no ptrace or access to other
processes' memory, no modules, kexec, reboot, swap, clock or hostname changes, no TIOCSTI/TIOCLINUX, no
AF_ALG/AF_VSOCK sockets, no personality change but the ones Docker allows. Refused calls fail with EPERM; a call
through another ABI (i386 `int 0x80`, x32) kills the process, since its numbers mean other syscalls.

Everything else is allowed and never reaches an argument check, so the kernel's per-syscall action cache
(Linux >= 5.11) lets it through without running the program at all: only clone, unshare, ioctl, socket and
personality pay for the filter.
"""

from __future__ import annotations

import os
import platform
import struct
from dataclasses import dataclass

# seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little endian: low half first).
_OFF_NR, _OFF_ARCH, _OFF_ARGS = 0, 4, 16

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x05 | 0x30 | 0x00
_JSET_K = 0x05 | 0x40 | 0x00
_RET_K = 0x06 | 0x00

RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

EPERM = 1
ENOSYS = 38

X32_SYSCALL_BIT = 0x40000000

# Namespace flags of clone(2)/unshare(2); CLONE_NEWTIME (0x80) is CSIGNAL's range in clone, a flag in unshare.
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_NAMESPACES = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
                    | CLONE_NEWNET)

TIOCSTI, TIOCLINUX = 0x5412, 0x541C  # push bytes into a terminal's input; the console's own ioctl
AF_ALG, AF_VSOCK = 38, 40  # kernel crypto sockets, host/guest sockets: Docker refuses both
# personality(2) values Docker allows: PER_LINUX, UNAME26 and PER_LINUX32 combinations, and the query.
PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)


@dataclass(frozen=True)
class Arch:
    """One architecture: its AUDIT_ARCH value and the numbers of the syscalls the filter names."""

    name: str
    audit: int
    numbers: dict[str, int]
    x32: bool  # the x32 ABI shares the arch value; its calls carry X32_SYSCALL_BIT


# Numbers from libseccomp's syscalls.csv (the kernel's tables); a name missing from an arch has no such syscall.
# tests/unit/sandbox/test_seccomp.py checks them against the host's libseccomp.
_X86_64 = {
    "ioctl": 16, "socket": 41, "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135,
    "ustat": 136, "sysfs": 139, "vhangup": 153, "pivot_root": 155, "_sysctl": 156, "adjtimex": 159, "chroot": 161,
    "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "create_module": 174,
    "init_module": 175, "delete_module": 176, "get_kernel_syms": 177, "query_module": 178, "quotactl": 179,
    "nfsservctl": 180, "getpmsg": 181, "putpmsg": 182, "afs_syscall": 183, "tuxcall": 184, "security": 185,
    "lookup_dcookie": 212, "clock_settime": 227, "vserver": 236, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "migrate_pages": 256, "unshare": 272, "move_pages": 279,
    "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440,
    "mount_setattr": 442, "quotactl_fd": 443, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
    "lsm_list_modules": 461, "open_tree_attr": 467, "listns": 470,
}
_AARCH64 = {
    "lookup_dcookie": 18, "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41, "nfsservctl": 42,
    "chroot": 51, "vhangup": 58, "quotactl": 60, "acct": 89, "personality": 92, "unshare": 97, "kexec_load": 104,
    "init_module": 105, "delete_module": 106, "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142,
    "sethostname": 161, "setdomainname": 162, "settimeofday": 170, "adjtimex": 171, "socket": 198,
    "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225,
    "migrate_pages": 238, "move_pages": 239, "perf_event_open": 241, "fanotify_init": 262,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
    "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273, "bpf": 280,
    "userfaultfd": 282, "kexec_file_load": 294, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440,
    "mount_setattr": 442, "quotactl_fd": 443, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
    "lsm_list_modules": 461, "open_tree_attr": 467, "listns": 470,
}
ARCHES = {
    "x86_64": Arch("x86_64", 0xC000003E, _X86_64, x32=True),
    "aarch64": Arch("aarch64", 0xC00000B7, _AARCH64, x32=False),
}

# Refused outright with EPERM, grouped by the door they open.
DENIED = (
    # mounts and the new mount API
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
    "open_tree", "open_tree_attr", "mount_setattr",
    # namespaces (clone and unshare are checked by their flags below)
    "setns", "listns",
    # kernel attack surface a build never needs
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    # other processes: tracing, their memory, their file descriptors, their pages
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise", "move_pages",
    "migrate_pages",
    # the kernel itself: modules, kexec, reboot, swap, accounting, quotas, log, raw I/O
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "get_kernel_syms", "query_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "syslog", "vhangup", "iopl", "ioperm", "lookup_dcookie", "fanotify_init", "open_by_handle_at",
    "name_to_handle_at", "nfsservctl",
    # the host's clock and names
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    # obsolete or never implemented
    "_sysctl", "sysfs", "ustat", "uselib", "afs_syscall", "tuxcall", "security", "vserver", "getpmsg", "putpmsg",
)
# clone3 passes its flags in a struct a filter cannot read: ENOSYS makes glibc and Go fall back to clone.
NOSYS = ("clone3",)


class _Asm:
    """A tiny classic-BPF assembler: instructions with symbolic jump targets, resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def ld(self, offset: int) -> None:
        self.code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, jt: int | str, jf: int | str) -> None:
        """jt/jf: 0 falls through, a str jumps to that label."""
        self.code.append((op, jt, jf, k))

    def ret(self, k: int) -> None:
        self.code.append((_RET_K, 0, 0, k))

    def assemble(self) -> bytes:
        out = []
        for pc, (op, jt, jf, k) in enumerate(self.code):
            offs = []
            for target in (jt, jf):
                off = target if isinstance(target, int) else self.labels[target] - pc - 1
                if not 0 <= off <= 255:
                    raise ValueError(f"jump at {pc} to {target!r} out of range ({off})")
                offs.append(off)
            out.append(struct.pack("<HBBI", op, offs[0], offs[1], k & 0xFFFFFFFF))
        return b"".join(out)


def _arg_lo(i: int) -> int:
    return _OFF_ARGS + 8 * i  # the low 32 bits: every argument checked is an int or has its flags there


def program(arch: str | None = None) -> bytes:
    """The filter for `arch` (default: this machine's) as the bytes of a `struct sock_filter` array, ready for
    bubblewrap's `--seccomp FD` or prctl(PR_SET_SECCOMP). ValueError for an architecture it does not know."""
    name = arch or platform.machine()
    a = ARCHES.get(name)
    if a is None:
        raise ValueError(f"no syscall table for {name!r} (known: {', '.join(ARCHES)})")
    n = a.numbers
    asm = _Asm()
    asm.ld(_OFF_ARCH)
    asm.jump(_JEQ_K, a.audit, 0, "kill")
    asm.ld(_OFF_NR)
    if a.x32:
        asm.jump(_JGE_K, X32_SYSCALL_BIT, "kill", 0)
    # The argument checks first (they are the only calls that run the program), each ending in a return; ioctl,
    # by far the commonest of them, first of all.
    asm.jump(_JEQ_K, n["ioctl"], 0, "not_ioctl")
    asm.ld(_arg_lo(1))
    asm.jump(_JEQ_K, TIOCSTI, "eperm", 0)
    asm.jump(_JEQ_K, TIOCLINUX, "eperm", "allow")
    asm.label("not_ioctl")
    asm.jump(_JEQ_K, n["clone"], 0, "not_clone")
    asm.ld(_arg_lo(0))
    asm.jump(_JSET_K, CLONE_NAMESPACES, "eperm", "allow")
    asm.label("not_clone")
    asm.jump(_JEQ_K, n["unshare"], 0, "not_unshare")
    asm.ld(_arg_lo(0))
    asm.jump(_JSET_K, CLONE_NAMESPACES | CLONE_NEWTIME, "eperm", "allow")
    asm.label("not_unshare")
    asm.jump(_JEQ_K, n["socket"], 0, "not_socket")
    asm.ld(_arg_lo(0))
    asm.jump(_JEQ_K, AF_ALG, "eperm", 0)
    asm.jump(_JEQ_K, AF_VSOCK, "eperm", "allow")
    asm.label("not_socket")
    asm.jump(_JEQ_K, n["personality"], 0, "not_personality")
    asm.ld(_arg_lo(0))
    for p in PERSONALITIES:
        asm.jump(_JEQ_K, p, "allow", 0)
    asm.ret(RET_ERRNO | EPERM)
    asm.label("not_personality")
    for name in NOSYS:
        asm.jump(_JEQ_K, n[name], "enosys", 0)
    for name in DENIED:
        if name in n:
            asm.jump(_JEQ_K, n[name], "eperm", 0)
    asm.label("allow")
    asm.ret(RET_ALLOW)
    asm.label("eperm")
    asm.ret(RET_ERRNO | EPERM)
    asm.label("enosys")
    asm.ret(RET_ERRNO | ENOSYS)
    asm.label("kill")
    asm.ret(RET_KILL_PROCESS)
    return asm.assemble()


def program_fd(arch: str | None = None) -> int:
    """A pipe's read end holding the program, for bubblewrap's `--seccomp FD` (close-on-exec here: pass it with
    `pass_fds`; the caller closes it once the child started). The program fits the pipe's buffer many times."""
    prog = program(arch)
    r, w = os.pipe()
    try:
        os.write(w, prog)
    finally:
        os.close(w)
    return r


def summary() -> str:
    """One line for `previewd doctor` and /healthz?detail=1: what the filter refuses."""
    return (f"seccomp: {len(DENIED)} syscalls refused with EPERM (mount, bpf, perf_event_open, keyctl, ptrace, "
            "kexec, modules, io_uring, ...), new namespaces refused in clone/unshare, clone3 ENOSYS, TIOCSTI, "
            "AF_ALG/AF_VSOCK and personality changes refused, other ABIs killed")
