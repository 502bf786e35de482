"""Small helpers over the cgroup filesystems (v1 and v2): find mounts, make/kill/remove build cgroups."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from pathlib import Path

PARENT_NAME = "previewd"
_counter = itertools.count(1)
_counter_lock = threading.Lock()
_swept: set[str] = set()


def unique_name() -> str:
    """A cgroup name unique across processes (pid) and calls (counter): b<pid>-<n>."""
    with _counter_lock:
        n = next(_counter)
    return f"b{os.getpid()}-{n}"


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) for every cgroup mount of this process."""
    out: list[tuple[str, str, str, set[str]]] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3 or rf[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((lf[3], lf[4].replace("\\040", " "), rf[0], set(rf[2].split(","))))
    return out


def _self_paths() -> dict[str, str]:
    """Controller name (or "" for the v2 tree) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if ctrls == "":
            paths[""] = path
        for c in ctrls.split(","):
            paths[c] = path
    return paths


def _join(mount: str, root: str, path: str) -> Path:
    rel = path
    if root != "/" and (path == root or path.startswith(root + "/")):
        rel = path[len(root) :]
    return Path(mount) / rel.lstrip("/")


def v2_self_dir() -> Path | None:
    """This process's cgroup directory in the v2 tree (pure or hybrid `unified`), if mounted."""
    paths = _self_paths()
    if "" not in paths:
        return None
    for root, mount, fstype, _opts in _mounts():
        if fstype == "cgroup2":
            return _join(mount, root, paths[""])
    return None


def v1_self_dir(controller: str) -> Path | None:
    """This process's cgroup directory in the v1 hierarchy holding `controller`, if mounted."""
    paths = _self_paths()
    if controller not in paths:
        return None
    for root, mount, fstype, opts in _mounts():
        if fstype == "cgroup" and controller in opts:
            return _join(mount, root, paths[controller])
    return None


def read_text(path: Path) -> str:
    """Read a cgroup file; '' when it is gone."""
    try:
        return path.read_text()
    except OSError:
        return ""


def read_kv(path: Path) -> dict[str, int]:
    """Parse a flat-keyed file like cpu.stat or memory.events into ints."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def read_int(path: Path, default: int = 0) -> int:
    """Read a single-integer cgroup file ("max" counts as default)."""
    text = read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        return default


def write(path: Path, value: str) -> None:
    """Write one value to a cgroup control file (raises OSError)."""
    with open(path, "w") as f:
        f.write(value)


def procs(cg: Path) -> list[int]:
    """Pids currently in a cgroup (v1 or v2)."""
    return [int(p) for p in read_text(cg / "cgroup.procs").split() if p.isdigit()]


def make_child(parent: Path) -> Path:
    """Create <parent>/previewd/<unique> and return it; sweeps stale siblings once per parent."""
    base = parent / PARENT_NAME
    base.mkdir(exist_ok=True)
    if str(base) not in _swept:
        _swept.add(str(base))
        sweep_stale(base)
    cg = base / unique_name()
    cg.mkdir()
    return cg


def sweep_stale(base: Path) -> None:
    """Kill and remove cgroups left by a supervisor that died mid-run (its pid is in the name)."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (entry.is_dir() and name.startswith("b") and "-" in name):
            continue
        pid_text = name[1:].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or Path(f"/proc/{pid_text}").exists():
            continue
        kill_v1(entry)
        remove(entry)


def wait_unpopulated(cg: Path, timeout: float = 5.0) -> bool:
    """Wait until the v2 cgroup holds no process (cgroup.events populated 0)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        events = read_kv(cg / "cgroup.events")
        if events.get("populated", 0) == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def kill_v2(cg: Path, keep: int | None = None) -> bool:
    """Kill every process in a v2 cgroup with cgroup.kill (races with fork are the kernel's problem)."""
    members = procs(cg)
    try:
        write(cg / "cgroup.kill", "1")
    except OSError:
        kill_v1(cg, keep=keep)
    done = wait_unpopulated(cg)
    reap_adopted(members, keep)
    return done


def kill_v1(cg: Path, freezer: Path | None = None, timeout: float = 5.0, keep: int | None = None) -> bool:
    """Freeze (when a freezer cgroup is given), SIGKILL every member, thaw; repeat until empty.

    Adopted zombies are reaped, except `keep` (the direct child, which the runner reaps itself).
    """
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while True:
        members = procs(cg)
        seen.extend(members)
        if not members:
            reap_adopted(seen, keep)
            return True
        if time.monotonic() > deadline:
            return False
        if freezer is not None:
            with contextlib.suppress(OSError):
                write(freezer / "freezer.state", "FROZEN")
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if freezer is not None:
            with contextlib.suppress(OSError):
                write(freezer / "freezer.state", "THAWED")
        time.sleep(0.005)


def reap_adopted(pids: list[int], keep: int | None = None) -> None:
    """Reap members re-parented to us (we may be a child subreaper) that are now zombies; not `keep`."""
    me = os.getpid()
    for pid in pids:
        if pid == keep:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] == b"Z" and int(fields[1]) == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def remove(cg: Path, timeout: float = 2.0) -> bool:
    """rmdir a cgroup, retrying while the kernel finishes tearing down its last tasks."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cg.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def writable_parent(parent: Path | None) -> tuple[bool, str]:
    """Check that we can create and remove a child cgroup under <parent>/previewd."""
    if parent is None:
        return False, "not mounted"
    try:
        cg = make_child(parent)
    except OSError as err:
        return False, f"cannot create a cgroup under {parent / PARENT_NAME}: {err.strerror or err}"
    ok = remove(cg)
    return ok, str(parent / PARENT_NAME) if ok else f"cannot remove test cgroup {cg}"
