"""What `previewd serve` does to itself before anything else: non-dumpable, and a private data dir and secret."""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

PR_SET_DUMPABLE = 4
DATA_DIR_MODE = 0o700
SECRET_MODE = 0o600


class HardeningError(Exception):
    """The data dir or the secret cannot be made private; the daemon refuses to start."""


def make_non_dumpable() -> bool:
    """PR_SET_DUMPABLE 0: processes of the same uid (builds, when the daemon runs as their user) can neither
    ptrace this process nor read its /proc/<pid>/environ, mem or root. Resets on execve, so children are
    unaffected. Returns whether it took effect."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _private(path: Path, mode: int, what: str, notes: list[str]) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise HardeningError(f"{what} {path} is a symbolic link; refusing to use it")
    if st.st_uid != os.geteuid():
        raise HardeningError(f"{what} {path} belongs to uid {st.st_uid}, not this daemon's uid {os.geteuid()}; "
                             f"fix with: chown {os.geteuid()} {path}")
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)  # lstat above: not a link
        notes.append(f"{what} {path} was mode {current:04o}; repaired to {current & mode:04o}")


def secure_data_dir(data_dir: Path, secret_file: Path) -> list[str]:
    """Make the data dir 0700 (created so when missing) and a generated hmac_secret 0600; returns what was
    repaired. HardeningError when either is a link or belongs to another uid."""
    notes: list[str] = []
    if not os.path.lexists(data_dir):
        data_dir.mkdir(mode=DATA_DIR_MODE, parents=True)
    elif not data_dir.is_dir():
        raise HardeningError(f"data dir {data_dir} is not a directory")
    _private(data_dir, DATA_DIR_MODE, "data dir", notes)
    if os.path.lexists(secret_file):
        _private(secret_file, SECRET_MODE, "HMAC secret", notes)
        if not stat.S_ISREG(os.lstat(secret_file).st_mode):
            raise HardeningError(f"HMAC secret {secret_file} is not a regular file")
    return notes
