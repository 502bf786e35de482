"""The seccomp program, read by an independent classic-BPF interpreter (both architectures, x86_64 also through the
kernel in tests/integration/sandbox/test_sandbox_seccomp.py), and its syscall numbers checked against libseccomp."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

import pytest

from sandbox import seccomp
from sandbox.seccomp import ARCHES, DENIED, NOSYS

ALLOW, KILL = seccomp.RET_ALLOW, seccomp.RET_KILL_PROCESS
EPERM, ENOSYS = seccomp.RET_ERRNO | 1, seccomp.RET_ERRNO | 38
ARG_CHECKED = ("clone", "unshare", "ioctl", "socket", "personality")
# Everyday syscalls by number: read, write, openat, mmap, execve, wait4 and futex (pnpm, node, esbuild, tsc)
EVERYDAY = {"x86_64": (0, 1, 257, 9, 59, 61, 202), "aarch64": (63, 64, 56, 222, 221, 260, 98)}


def evaluate(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> tuple[int, bool]:
    """What the program returns for one seccomp_data, and whether it read an argument on the way (the kernel's
    action cache skips the program only for calls whose answer never depends on one)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in args])
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc, read_args = 0, 0, False
    for _ in range(len(insns)):  # no loops in classic BPF: every run ends within len(insns) steps
        op, jt, jf, k = insns[pc]
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
            read_args |= k >= 16
            pc += 1
        elif op in (0x15, 0x35, 0x45):  # jeq, jge, jset
            hit = acc == k if op == 0x15 else acc >= k if op == 0x35 else bool(acc & k)
            pc += 1 + (jt if hit else jf)
        elif op == 0x06:
            return k, read_args
        else:
            raise AssertionError(f"unexpected opcode {op:#x} at {pc}")
    raise AssertionError("ran off the end")


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_every_denied_call_is_refused_and_every_other_call_allowed(name: str) -> None:
    a = ARCHES[name]
    prog = seccomp.program(name)
    assert len(prog) % 8 == 0 and len(prog) // 8 < 200
    for call in DENIED:
        if call in a.numbers:
            assert evaluate(prog, a.numbers[call], a.audit) == (EPERM, False), call
    assert evaluate(prog, a.numbers["clone3"], a.audit) == (ENOSYS, False)
    special = {a.numbers[c] for c in (*DENIED, *NOSYS, *ARG_CHECKED) if c in a.numbers}
    for nr in range(0, 600):
        if nr not in special:  # allowed without reading an argument: the kernel caches it as always-allow
            assert evaluate(prog, nr, a.audit, (-1,) * 6) == (ALLOW, False), nr
    for nr in EVERYDAY[name]:
        assert nr not in special


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_arguments_decide_for_namespaces_ioctl_socket_and_personality(name: str) -> None:
    a = ARCHES[name]
    n, prog = a.numbers, seccomp.program(name)

    def verdict(call: str, *args: int) -> int:
        return evaluate(prog, n[call], a.audit, (*args, *(0,) * (6 - len(args))))[0]

    thread = 0x003D0F00  # what glibc's pthread_create passes to clone
    assert verdict("clone", thread) == ALLOW
    assert verdict("clone", 0x11) == ALLOW  # fork: SIGCHLD
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        assert verdict("clone", flag | 0x11) == EPERM, hex(flag)
        assert verdict("unshare", flag) == EPERM, hex(flag)
    assert verdict("unshare", 0x80) == EPERM  # CLONE_NEWTIME
    assert verdict("unshare", 0x200 | 0x400) == ALLOW  # CLONE_FS | CLONE_FILES
    assert verdict("ioctl", 0, 0x5412) == EPERM  # TIOCSTI
    assert verdict("ioctl", 0, 0x541C) == EPERM  # TIOCLINUX
    assert verdict("ioctl", 0, (1 << 32) | 0x5412) == EPERM  # the kernel reads cmd as an unsigned int
    assert verdict("ioctl", 0, 0x541B) == ALLOW  # FIONREAD
    assert verdict("socket", 38) == EPERM and verdict("socket", 40) == EPERM  # AF_ALG, AF_VSOCK
    assert verdict("socket", 2) == ALLOW and verdict("socket", 1) == ALLOW and verdict("socket", 16) == ALLOW
    for p in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert verdict("personality", p) == ALLOW, hex(p)
    assert verdict("personality", 0x0040000) == EPERM  # ADDR_NO_RANDOMIZE


def test_other_abis_are_killed() -> None:
    prog = seccomp.program("x86_64")
    x86 = ARCHES["x86_64"].audit
    assert evaluate(prog, 39, 0x40000003) == (KILL, False)  # i386 (int 0x80) getpid
    assert evaluate(prog, 39 | seccomp.X32_SYSCALL_BIT, x86) == (KILL, False)  # x32 getpid
    assert evaluate(prog, 39, ARCHES["aarch64"].audit) == (KILL, False)
    assert evaluate(seccomp.program("aarch64"), 20, 0x40000028) == (KILL, False)  # arm (32-bit) on aarch64


def test_an_unknown_architecture_is_named() -> None:
    with pytest.raises(ValueError, match="no syscall table for 'riscv64'"):
        seccomp.program("riscv64")


def test_the_pipe_holds_exactly_the_program() -> None:
    fd = seccomp.program_fd("x86_64")
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    finally:
        os.close(fd)
    assert data == seccomp.program("x86_64")


def _libseccomp() -> ctypes.CDLL:
    path = ctypes.util.find_library("seccomp")
    # Every Debian or Ubuntu host has it (systemd depends on it); the filter itself does not use it.
    assert path, "libseccomp.so.2 (Debian package libseccomp2) is needed to check the syscall numbers"
    lib = ctypes.CDLL(path)
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    return lib


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_the_syscall_numbers_are_the_kernels(name: str) -> None:
    lib, a = _libseccomp(), ARCHES[name]
    checked = 0
    for call in sorted({*DENIED, *NOSYS, *ARG_CHECKED}):
        nr = lib.seccomp_syscall_resolve_name_arch(a.audit, call.encode())
        if nr == -1:  # newer than this libseccomp (listns, lsm_*, open_tree_attr on 2.5): not checkable here
            continue
        checked += 1
        if nr < 0:  # libseccomp's pseudo-number: the call does not exist on this architecture
            assert call not in a.numbers, call
        else:
            assert a.numbers.get(call) == nr, call
    assert checked >= 70, checked
