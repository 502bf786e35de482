"""A read-only view of the host for a run (bubblewrap): only the paths it may write are writable, /tmp is private."""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import userns
from sandbox.layers.base import Availability

INSTALL_HINT = ("install it with `apt-get install bubblewrap` (or `scripts/install-system-deps.sh`, which `make run` "
                "runs)")


@dataclass(frozen=True)
class Mount:
    """One step of a view, applied in order (later mounts cover earlier ones).

    kind: `rw` binds the path read-write, `ro` read-only, `hide` covers a directory with an empty tmpfs and a
    file with /dev/null. A path that does not exist (or is a link) is skipped: nothing is followed.
    """

    kind: str
    path: Path

    def __post_init__(self) -> None:
        if self.kind not in ("rw", "ro", "hide"):
            raise ValueError(f"unknown mount kind {self.kind!r}")


@dataclass(frozen=True)
class FsView:
    """What a run may see: the root read-only, `writable` dirs bound read-write at their own paths (the run's cwd
    too unless `mounts` already places it), `hidden` dirs replaced by an empty tmpfs and hidden files by
    /dev/null, `readonly` paths bound read-only on top of the private /tmp; then `mounts`, in order. /tmp and
    /dev/shm are private tmpfs (their bytes are charged to the memory limit), capped at `tmp_bytes` when set.
    The run also gets its own pid, IPC and UTS namespaces: it cannot see or signal any process outside."""

    writable: tuple[Path, ...] = field(default_factory=tuple)
    hidden: tuple[Path, ...] = field(default_factory=tuple)
    # Re-exposed read-only on top of the private /tmp (a toolchain installed under /tmp, say).
    readonly: tuple[Path, ...] = field(default_factory=tuple)
    mounts: tuple[Mount, ...] = field(default_factory=tuple)
    tmp_bytes: int | None = None


@functools.lru_cache(maxsize=1)
def bwrap_availability() -> Availability:
    """Whether bubblewrap is installed and can make its namespaces here (tried once, then cached)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Availability(False, f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
    try:
        out = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                              "--unshare-pid", "--unshare-net", "--", "true"], capture_output=True, text=True,
                             timeout=20, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return Availability(False, f"bwrap at {bwrap} could not run: {exc}")
    if out.returncode != 0:
        said = f"bwrap at {bwrap} cannot create its namespaces here: {out.stderr.strip()[:200]}"
        blocked = userns.explain(bwrap=bwrap)
        return Availability(False, f"{said} ({blocked[0]})" if blocked else said)
    return Availability(True, f"bwrap at {bwrap}: read-only root, private /tmp, pid and network namespaces, only "
                              "the step's own directories writable")


def _kind_of(path: Path) -> str | None:
    """'dir', 'file' or None (missing, or a link: a mount never follows one)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _mount_args(m: Mount) -> list[str]:
    kind = _kind_of(m.path)
    if kind is None:
        return []
    p = str(m.path)
    if m.kind == "rw":
        return ["--bind", p, p]
    if m.kind == "ro":
        return ["--ro-bind", p, p]
    return ["--tmpfs", p] if kind == "dir" else ["--ro-bind", "/dev/null", p]


def _drop_argv(uid: int, gid: int) -> list[str]:
    """The command that drops root to uid/gid (no groups, no capabilities left) inside the sandbox, then execs."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--"]
    code = (f"import os,sys; os.setgroups([]); os.setgid({gid}); os.setuid({uid}); "
            "os.execvp(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-I", "-S", "-c", code]


def wrap(argv: Sequence[str], cwd: Path, view: FsView, *, network: bool = True,
         drop_to: tuple[int, int] | None = None, seccomp_fd: int | None = None) -> list[str]:
    """argv run inside bubblewrap with `view`; later mounts win, so the masks come after the writable binds.

    Without `network`, bubblewrap also gives the step an empty network namespace: through a user namespace it
    can, where a service without CAP_SYS_ADMIN cannot unshare one itself.
    Run by root, bubblewrap would hand the step every capability: they are all dropped, and with `drop_to`
    the step runs as that (uid, gid). bubblewrap itself stays root, so the view's sources need no permission
    for the build user (the data dir can stay 0700).
    With `seccomp_fd` (a pipe from sandbox.seccomp.program_fd(), passed to the child), bubblewrap installs that
    syscall filter after making its namespaces and mounts, right before it execs argv: it binds the whole step.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]
        if drop_to is not None:
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
            argv = [*_drop_argv(*drop_to), *argv]
    for tmp in ("/tmp", "/dev/shm"):
        if view.tmp_bytes:
            args += ["--size", str(view.tmp_bytes)]
        # Sticky and world-writable as on a host: a step dropped to the build user must be able to write its own
        # private /tmp (bubblewrap makes a tmpfs 0755 root otherwise, and `mktemp` then fails).
        args += ["--perms", "1777", "--tmpfs", tmp]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
             "--new-session"]
    if not network:
        args.append("--unshare-net")
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for ro in view.readonly:
        r = Path(ro).resolve()
        if r.exists():
            args += ["--ro-bind", str(r), str(r)]
    writable = [Path(w).resolve() for w in view.writable]
    here = Path(cwd).resolve()
    placed = [m.path for m in view.mounts if m.kind in ("rw", "ro")]
    # A separate bind for a cwd already inside a writable dir would be a second mount, and hard links (pnpm's
    # store -> node_modules) cannot cross mounts: bind it only when nothing else covers it.
    if not any(here == w or here.is_relative_to(w) for w in writable + placed):
        writable.append(here)
    for w in writable:
        args += ["--bind", str(w), str(w)]
    for hidden in view.hidden:
        args += _mount_args(Mount("hide", Path(hidden)))
    # Directories bubblewrap makes inside a tmpfs to hold a later mount point come out 0700 root, which a
    # dropped build user cannot cross: they are made first, 0755.
    tmpfs_roots = [Path("/tmp"), Path("/dev/shm")]
    made: set[Path] = set()
    for m in view.mounts:
        if m.kind == "hide":
            if _kind_of(m.path) == "dir":
                tmpfs_roots.append(m.path)
        else:
            args += _parent_dirs(m.path, tmpfs_roots, made)
        args += _mount_args(m)
    return [*args, "--chdir", str(here), "--", *argv]


def _parent_dirs(path: Path, tmpfs_roots: list[Path], made: set[Path]) -> list[str]:
    """`--perms 0755 --dir` for each directory between the innermost tmpfs holding `path` and `path`."""
    roots = [r for r in tmpfs_roots if path.is_relative_to(r) and path != r]
    if not roots or _kind_of(path) is None:
        return []
    root = max(roots, key=lambda r: len(r.parts))
    out: list[str] = []
    for depth in range(len(root.parts) + 1, len(path.parts)):
        d = Path(*path.parts[:depth])
        if d not in made:
            made.add(d)
            out += ["--perms", "0755", "--dir", str(d)]
    return out
