"""Paths below a trusted root resolved without following links: openat2 (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
where the kernel has it, else an O_NOFOLLOW walk, one component at a time."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import platform
import shutil
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

# openat2(2): the same number on every architecture (it was added after the syscall tables were unified).
_SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A component below the root is a link (or not a directory where one must be): nothing was followed."""

    def __init__(self, root: Path | str, rel: str, why: str) -> None:
        super().__init__(errno.ELOOP, f"refusing {rel!r} under {root}: {why}")
        self.root = str(root)
        self.rel = rel
        self.why = why

    def __str__(self) -> str:
        return f"refusing {self.rel!r} under {self.root}: {self.why}"


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def openat2_available() -> bool:
    """Whether openat2 works here (Linux >= 5.6 and not filtered by seccomp); probed once."""
    try:
        fd = _openat2(os.open("/", _DIR_FLAGS), ".", os.O_RDONLY | os.O_DIRECTORY, 0, close_dir=True)
    except OSError:
        return False
    os.close(fd)
    return True


def _openat2(dir_fd: int, rel: str, flags: int, mode: int, *, close_dir: bool = False) -> int:
    libc = _libc()
    try:
        if libc is None:
            raise OSError(errno.ENOSYS, "openat2 needs Linux")
        how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0,
                       RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
        fd = libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(rel), ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), rel)
        return int(fd)
    finally:
        if close_dir:
            os.close(dir_fd)


def split_rel(rel: str | Path | Sequence[str]) -> list[str]:
    """The components of a relative path; ValueError for an absolute path, '..', '.', empty or NUL parts."""
    parts = list(rel) if isinstance(rel, list | tuple) else str(rel).split("/")
    if isinstance(rel, str | Path) and str(rel).startswith("/"):
        raise ValueError(f"{str(rel)!r} is absolute; expected a path relative to its root")
    for p in parts:
        if not isinstance(p, str) or p in ("", ".", "..") or "/" in p or "\0" in p:
            raise ValueError(f"bad path component {p!r} in {rel!r}")
    return parts


def _walk_open(root_fd: int, parts: list[str], flags: int, mode: int, root: Path, *, create_dirs: bool,
               dir_mode: int) -> int:
    """Open parts[-1] below root_fd, every component with O_NOFOLLOW; mkdir missing dirs when asked."""
    fd = root_fd
    rel = ""
    try:
        for i, name in enumerate(parts):
            rel = f"{rel}/{name}" if rel else name
            last = i == len(parts) - 1
            if last and not (flags & os.O_DIRECTORY):
                return _open_one(fd, name, flags, mode, root, rel)
            if create_dirs:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, dir_mode, dir_fd=fd)
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(root, rel, "a link or a non-directory where a directory must be") from None
                raise
            if fd != root_fd:
                os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        if fd != root_fd:
            os.close(fd)
        raise


def open_beneath(root: Path, rel: str | Path | Sequence[str], flags: int = os.O_RDONLY, mode: int = 0o644, *,
                 create_dirs: bool = False, dir_mode: int = 0o755) -> int:
    """An fd for root/rel reached without following any link below root (root itself is trusted).

    Raises UnsafePath when a component is a link, FileNotFoundError when it is missing (unless
    `create_dirs`, which makes the missing parent directories). Add O_DIRECTORY to open a directory.
    """
    parts = split_rel(rel)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not parts:
            return os.dup(root_fd)
        if create_dirs:
            parent = _walk_open(root_fd, parts[:-1], os.O_DIRECTORY, 0, root, create_dirs=True,
                                dir_mode=dir_mode) if len(parts) > 1 else os.dup(root_fd)
            try:
                if flags & os.O_DIRECTORY:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(parts[-1], dir_mode, dir_fd=parent)
                return _open_one(parent, parts[-1], flags, mode, root, "/".join(parts))
            finally:
                os.close(parent)
        if openat2_available():
            try:
                return _openat2(root_fd, "/".join(parts), flags, mode)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EXDEV):
                    raise UnsafePath(root, "/".join(parts), "a component is a link") from None
                if exc.errno == errno.ENOTDIR:
                    raise UnsafePath(root, "/".join(parts), "a component is not a directory") from None
                raise
        return _walk_open(root_fd, parts, flags, mode, root, create_dirs=False, dir_mode=dir_mode)
    finally:
        os.close(root_fd)


def open_beneath_fd(dir_fd: int, rel: str | Sequence[str], flags: int = os.O_RDONLY) -> int:
    """An fd for rel below the open directory `dir_fd`, no link followed at any depth (openat2 with
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, else O_NOFOLLOW per component).

    Raises UnsafePath when a component is a link or not a directory. Never creates anything.
    """
    parts = split_rel(rel)
    if openat2_available():
        try:
            return _openat2(dir_fd, "/".join(parts), flags, 0)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
                raise UnsafePath(f"fd {dir_fd}", "/".join(parts), "a component is a link or not a directory") \
                    from None
            raise
    return _walk_open(dir_fd, parts, flags, 0, Path(f"fd {dir_fd}"), create_dirs=False, dir_mode=0)


def _open_one(dir_fd: int, name: str, flags: int, mode: int, root: Path, rel: str) -> int:
    try:
        if flags & os.O_DIRECTORY:
            return os.open(name, _DIR_FLAGS | (flags & ~os.O_ACCMODE & ~os.O_CREAT), dir_fd=dir_fd)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(root, rel, "the last component is a link or not a directory") from None
        raise


def ensure_dir(root: Path, rel: str | Path | Sequence[str], mode: int = 0o755) -> Path:
    """Make root/rel (and its parents) as real directories; UnsafePath when a link is in the way.

    Returns root/rel as a path. It stays safe to use by name as long as nothing untrusted can write its
    parents: callers use it for dirs no build step can see, or between steps (when no build process lives).
    """
    parts = split_rel(rel)
    os.close(open_beneath(root, parts, os.O_RDONLY | os.O_DIRECTORY, create_dirs=True, dir_mode=mode))
    return Path(root).joinpath(*parts)


def check_dir(root: Path, rel: str | Path | Sequence[str]) -> Path:
    """root/rel when every component is a real directory (no link); UnsafePath or FileNotFoundError otherwise."""
    parts = split_rel(rel)
    os.close(open_beneath(root, parts, os.O_RDONLY | os.O_DIRECTORY))
    return Path(root).joinpath(*parts)


def read_regular(root: Path, rel: str | Path | Sequence[str], max_bytes: int) -> bytes:
    """The bytes of a regular file below root (never a link, FIFO or device); ValueError past max_bytes."""
    fd = open_beneath(root, rel, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(root, str(rel), "not a regular file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{rel} is larger than {max_bytes} bytes")
    return data


def write_atomic(root: Path, rel: str | Path | Sequence[str], data: bytes, mode: int = 0o644) -> None:
    """Write root/rel via a temp file and rename, in a parent reached without links (parents are created)."""
    parts = split_rel(rel)
    parent = open_beneath(root, parts[:-1], os.O_RDONLY | os.O_DIRECTORY, create_dirs=True) if len(parts) > 1 \
        else os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp = f".{parts[-1]}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=parent)
        raise
    finally:
        os.close(parent)


def remove_tree(root: Path, rel: str | Path | Sequence[str]) -> None:
    """Remove root/rel (a file, link or tree) without following any link; missing is fine."""
    parts = split_rel(rel)
    try:
        parent = open_beneath(root, parts[:-1], os.O_RDONLY | os.O_DIRECTORY) if len(parts) > 1 \
            else os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(parts[-1], dir_fd=parent)  # rmtree with dir_fd never follows links
        else:
            os.unlink(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        pass
    finally:
        os.close(parent)


def walk_regular(top: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every regular file under top, links never followed (top must be a real dir)."""
    for dirpath, _dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, top)
        for name in files:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                yield (name if rel_dir == "." else f"{rel_dir}/{name}"), st
