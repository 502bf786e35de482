"""The syscall filter through the real kernel: every refused call refused, the arguments read right, other ABIs
killed, everyday calls untouched; in the build view (bubblewrap) as the build user, and by the launcher where a
step has no view. The doors are tests/support/seccomp_doors.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import sandbox
from sandbox import FsView, Limits, seccomp
from sandbox.fsview import Mount
from tests.integration.sandbox.sandbox_support import PY

LIMITS = Limits(cpu_seconds=30, memory_bytes=512 * 2**20, wall_seconds=60)
DOORS = (Path(__file__).resolve().parents[2] / "support" / "seccomp_doors.py").read_text()
ALL_REFUSED = {
    "bpf": "EPERM", "clone3": "ENOSYS", "clone_newuser": "EPERM", "init_module": "EPERM", "io_uring_setup": "EPERM",
    "kexec_load": "EPERM", "keyctl": "EPERM", "mount": "EPERM", "perf_event_open": "EPERM",
    "personality_no_aslr": "EPERM", "process_vm_readv": "EPERM", "ptrace_sibling": "EPERM", "setns": "EPERM",
    "socket_vsock": "EPERM", "tiocsti": "EPERM", "unshare_mount": "EPERM", "unshare_user": "EPERM",
    "userfaultfd": "EPERM", "x32_abi": "killed:SIGSYS",
}
EVERYDAY = {k: "ok" for k in ("fork", "getpid", "ioctl_fionread", "personality_query", "sleep", "socket_inet",
                               "subprocess", "thread", "unshare_fs")}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    w = tmp_path / "work"
    w.mkdir()
    os.chown(w, 65534, 65534)  # the build user's, as a build's workspace is
    return w


def _view(work: Path) -> FsView:
    return FsView(mounts=(Mount("rw", work),))


def _run(argv: list[str], work: Path, *, view: FsView | None, user: str | None = "nobody",
         **kw: object) -> tuple[sandbox.Result, list[str]]:
    lines: list[str] = []
    env = sandbox.safe_env({"PATH": "/usr/local/bin:/usr/bin:/bin"}, home=work)
    res = sandbox.run(argv, work, env, LIMITS, on_line=lines.append, view=view, user=user, **kw)  # type: ignore[arg-type]
    return res, lines


def _doors(work: Path, which: str, *, view: FsView | None, **kw: object) -> dict[str, str]:
    res, lines = _run([PY, "-c", DOORS, which], work, view=view, **kw)
    assert (res.reason, res.exit_code) == ("ok", 0), (res.detail, lines)
    out: dict[str, str] = json.loads(lines[-1])
    return out


def test_the_build_user_finds_every_door_shut_in_the_view(work: Path) -> None:
    assert sandbox.probe()["features"]["syscall_filter"]["on"] is True
    assert _doors(work, "doors", view=_view(work)) == ALL_REFUSED
    assert _doors(work, "works", view=_view(work)) == EVERYDAY


def test_without_the_filter_the_same_doors_open(work: Path) -> None:
    """What the filter is for: in the same view, as the same user, a build could use keyrings, clone3 and turn off
    its ASLR on any host, and on this one (no Yama, no AppArmor userns restriction, perf_event_paranoid 2) also
    make a user namespace (and be root in it, with mount), use io_uring, perf counters, userfaultfd and trace its
    siblings: those depend on the host's sysctls, so only the first three are asserted."""
    opened = _doors(work, "doors", view=_view(work), syscall_filter=False)
    for door in ("clone3", "keyctl", "personality_no_aslr"):
        assert opened[door] == "ok", (door, opened)
    assert opened["tiocsti"] == "ENOTTY", opened  # reaches the tty layer (stdin is not a terminal)


def test_unshare_and_a_mount_in_a_new_namespace_fail(work: Path) -> None:
    assert shutil.which("unshare"), "util-linux's unshare is on every Debian host"
    script = ("unshare -U true; echo user=$?; unshare -Ur true; echo root=$?; "
              "unshare -Urm sh -c 'mount -t tmpfs none /tmp && echo mounted'; echo mount=$?")
    res, lines = _run(["sh", "-c", script], work, view=_view(work))
    assert res.reason == "ok", (res.detail, lines)
    assert [ln for ln in lines if "=" in ln] == ["user=1", "root=1", "mount=1"], lines
    assert "mounted" not in lines
    assert sum("Operation not permitted" in ln for ln in lines) == 3, lines


def test_node_child_processes_workers_and_files_still_work(work: Path) -> None:
    node = shutil.which("node")
    assert node, "the suite needs node"
    script = ("const cp=require('child_process'),fs=require('fs'),{Worker}=require('worker_threads');"
              "fs.writeFileSync('f.txt','x'.repeat(1e5));"
              "const w=new Worker('require(\"worker_threads\").parentPort.postMessage(6*7)',{eval:true});"
              "w.on('message',m=>{console.log('worker',m);"
              "console.log('child',cp.execFileSync('sh',['-c','echo $((1+1))']).toString().trim());"
              "fs.promises.readFile('f.txt').then(b=>console.log('read',b.length));});")
    res, lines = _run([node, "-e", script], work, view=_view(work))
    assert (res.reason, res.exit_code) == ("ok", 0), (res.detail, lines)
    assert lines == ["worker 42", "child 2", "read 100000"], lines


def test_every_refused_call_is_refused_by_the_kernel_without_a_view(work: Path) -> None:
    """The launcher installs the filter where bubblewrap does not run: root here, with every capability, so EPERM
    can only be the filter's. The arguments (-1 everywhere) would make each call fail harmlessly otherwise."""
    names = [n for n in seccomp.DENIED if n in seccomp.ARCHES[os.uname().machine].numbers]
    # Only ever under a filter: without one (the code before it), root's calls would reach the kernel.
    code = ("import ctypes, json, sys\nfrom sandbox import seccomp\n"
            "if 'Seccomp:\\t2' not in open('/proc/self/status').read():\n    sys.exit('no syscall filter')\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.syscall.restype = ctypes.c_long\nnums = seccomp.ARCHES[__import__('os').uname().machine].numbers\n"
            "out = {}\nfor name in json.loads(sys.argv[1]):\n    ctypes.set_errno(0)\n"
            "    r = libc.syscall(ctypes.c_long(nums[name]), *[ctypes.c_long(-1)] * 6)\n"
            "    out[name] = ctypes.get_errno() if r < 0 else 'returned'\nprint(json.dumps(out))\n")
    repo = str(Path(seccomp.__file__).resolve().parents[1])
    res, lines = _run(["/usr/bin/env", f"PYTHONPATH={repo}", PY, "-c", code, json.dumps(names)], work, view=None,
                      user=None)
    assert (res.reason, res.exit_code) == ("ok", 0), (res.detail, lines)
    assert json.loads(lines[-1]) == dict.fromkeys(names, 1)


I386_GETPID = ("import ctypes, mmap, os\nm = mmap.mmap(-1, 4096, prot=7)\n"
               "m.write(b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3')  # mov eax, 20 (i386 getpid); int 0x80; ret\n"
               "f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n"
               "print('i386 getpid', f() == os.getpid())\n")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the i386 ABI exists on x86_64 only")
def test_the_i386_abi_kills_the_process(work: Path) -> None:
    res, lines = _run([PY, "-c", I386_GETPID], work, view=_view(work), syscall_filter=False)
    assert lines == ["i386 getpid True"], lines  # the door exists on this kernel
    res, lines = _run([PY, "-c", I386_GETPID], work, view=_view(work))
    assert res.reason == "exit_nonzero" and "i386 getpid True" not in lines, (res.detail, lines)
    assert res.exit_code == 128 + 31 or "SIGSYS" in res.detail, (res.exit_code, res.detail)


def test_the_filter_fd_does_not_reach_the_step(work: Path) -> None:
    res, lines = _run(["sh", "-c", "ls /proc/$$/fd"], work, view=_view(work))
    assert res.reason == "ok", (res.detail, lines)
    assert sorted(lines) == ["0", "1", "2"], lines
