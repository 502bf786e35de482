"""A read-only view of the host for a run (bubblewrap): only the paths it may write are writable, /tmp is private."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.layers.base import Availability


@dataclass(frozen=True)
class FsView:
    """What a run may see: the root read-only, `writable` dirs bound read-write at their own paths (the run's cwd
    always), `hidden` dirs replaced by an empty tmpfs and hidden files by /dev/null, /tmp a private tmpfs (its
    bytes are charged to the memory limit)."""

    writable: tuple[Path, ...] = field(default_factory=tuple)
    hidden: tuple[Path, ...] = field(default_factory=tuple)
    # Re-exposed read-only on top of the private /tmp (a toolchain installed under /tmp, say).
    readonly: tuple[Path, ...] = field(default_factory=tuple)


@functools.lru_cache(maxsize=1)
def bwrap_availability() -> Availability:
    """Whether bubblewrap is installed and can make a mount namespace here (tried once, then cached)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Availability(False, "bubblewrap (bwrap) is not installed: builds see the host's filesystem as their "
                                   "user may (apt-get install bubblewrap)")
    try:
        out = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                              "--", "true"], capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
                             check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return Availability(False, f"bwrap at {bwrap} could not run: {exc}")
    if out.returncode != 0:
        return Availability(False, f"bwrap at {bwrap} cannot create a mount namespace here: "
                                   f"{out.stderr.strip()[:200]}")
    return Availability(True, f"bwrap at {bwrap}: read-only root, private /tmp, only the workspace and the daemon's "
                              "build dirs writable")


def wrap(argv: Sequence[str], cwd: Path, view: FsView, *, network: bool = True) -> list[str]:
    """argv run inside bubblewrap with `view`; later mounts win, so the masks come after the writable binds.

    Without `network`, bubblewrap also gives the step an empty network namespace: through a user namespace it
    can, where a service without CAP_SYS_ADMIN cannot unshare one itself.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", "/dev/shm", "--die-with-parent", "--new-session"]
    if not network:
        args.append("--unshare-net")
    for ro in view.readonly:
        r = Path(ro).resolve()
        if r.exists():
            args += ["--ro-bind", str(r), str(r)]
    writable = [Path(w).resolve() for w in view.writable]
    here = Path(cwd).resolve()
    # A separate bind for a cwd already inside a writable dir would be a second mount, and hard links (pnpm's
    # store -> node_modules) cannot cross mounts: bind it only when nothing else covers it.
    if not any(here == w or here.is_relative_to(w) for w in writable):
        writable.append(here)
    for w in writable:
        args += ["--bind", str(w), str(w)]
    for hidden in view.hidden:
        h = Path(hidden)
        if h.is_symlink() or not h.exists():
            continue
        args += ["--tmpfs", str(h)] if h.is_dir() else ["--ro-bind", "/dev/null", str(h)]
    return [*args, "--chdir", str(here), "--", *argv]
