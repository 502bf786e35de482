"""Project workspaces on disk: write a file set exactly (never through a symlink) and read one back."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

# The project's git repository lives beside its sources; it is never written, removed or read as a source.
ALWAYS_KEPT = (".git",)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TMP_PREFIX = ".previewd-tmp-"


class WorkspaceError(Exception):
    """A file set cannot be written safely (a path escapes the workspace or hits a kept directory)."""

    code = "invalid_output"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def materialize(dest: Path, files: Mapping[str, str | bytes], keep: Sequence[str] = ("node_modules",)) -> None:
    """Make ``dest`` hold exactly ``files``, leaving the ``keep`` dirs (and ``.git``) untouched.

    A kept entry is a top-level name or a relative path (``apps/web/node_modules``: a workspace package's).

    Every path is checked before anything is written. Files are written via a temp file and ``os.replace``;
    unchanged files are left alone (so mtimes, and incremental tools, stay warm). Everything is reached
    through directory file descriptors opened with ``O_NOFOLLOW``: a symlink found in ``dest`` is replaced or
    removed, never written through. Raises WorkspaceError for an unsafe path (nothing written yet) and
    OSError when the disk fails midway (the caller must not treat the workspace as a good base then).
    """
    kept = {tuple(k.split("/")) for k in (*keep, *ALWAYS_KEPT)}
    plan: dict[tuple[str, ...], bytes] = {}
    for path, content in files.items():
        parts = _split(path)
        hit = next((parts[:i] for i in range(1, len(parts) + 1) if parts[:i] in kept), None)
        if hit is not None:
            raise WorkspaceError(f"{path!r} would write into the kept directory {'/'.join(hit)!r}")
        plan[parts] = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    _check_no_file_dir_clash(plan)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        root = os.open(dest, _DIR_FLAGS)
    except OSError as exc:
        raise WorkspaceError(f"workspace {dest} is not a plain directory: {exc.strerror}") from None
    try:
        wanted_dirs = {parts[:i] for parts in plan for i in range(1, len(parts))}
        _prune(root, (), plan, wanted_dirs, kept)
        for parts, data in plan.items():
            _write(root, parts, data)
    finally:
        os.close(root)


def write_file(dest: Path, path: str, content: str | bytes) -> None:
    """Write one file of a file set below ``dest`` (an existing directory), never through a symlink; a kept
    directory (``node_modules``, ``.git``) is refused with WorkspaceError. ``materialize`` later makes the set exact."""
    parts = _split(path)
    if parts[0] in ("node_modules", *ALWAYS_KEPT):
        raise WorkspaceError(f"{path!r} would write into the kept directory {parts[0]!r}")
    try:
        root = os.open(dest, _DIR_FLAGS)
    except OSError as exc:
        raise WorkspaceError(f"workspace {dest} is not a plain directory: {exc.strerror}") from None
    try:
        _write(root, parts, content.encode("utf-8") if isinstance(content, str) else bytes(content))
    finally:
        os.close(root)


def _split(path: str) -> tuple[str, ...]:
    """Split a relative POSIX path, refusing anything that could leave the workspace."""
    if not isinstance(path, str) or not path:
        raise WorkspaceError(f"invalid path {path!r}")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise WorkspaceError(f"{path!r} escapes the workspace")
    parts = tuple(path.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise WorkspaceError(f"{path!r} escapes the workspace or has an empty segment")
    return parts


def _check_no_file_dir_clash(plan: Mapping[tuple[str, ...], bytes]) -> None:
    """Refuse a set where one path is a file and also the directory of another (``a`` and ``a/b``)."""
    dirs = {parts[:i] for parts in plan for i in range(1, len(parts))}
    clash = next((p for p in plan if p in dirs), None)
    if clash is not None:
        raise WorkspaceError(f"{'/'.join(clash)!r} is both a file and a directory")


def _prune(
    dir_fd: int,
    prefix: tuple[str, ...],
    plan: Mapping[tuple[str, ...], bytes],
    wanted_dirs: set[tuple[str, ...]],
    kept: set[tuple[str, ...]],
) -> None:
    """Remove every entry under ``dir_fd`` that the plan does not want (symlinks are removed, not followed)."""
    with os.scandir(dir_fd) as it:
        entries = list(it)
    for entry in entries:
        parts = (*prefix, entry.name)
        is_dir = entry.is_dir(follow_symlinks=False)
        if parts in kept and (is_dir or len(parts) == 1):  # a nested kept path must be a real directory
            continue
        if is_dir and parts in wanted_dirs:
            sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _prune(sub, parts, plan, wanted_dirs, kept)
            finally:
                os.close(sub)
        elif is_dir:
            shutil.rmtree(entry.name, dir_fd=dir_fd)
        elif parts not in plan or not entry.is_file(follow_symlinks=False):
            os.unlink(entry.name, dir_fd=dir_fd)


def _write(root: int, parts: tuple[str, ...], data: bytes) -> None:
    """Write one file below ``root`` via a temp file and ``os.replace``; skip it when already identical."""
    fd = _open_parents(root, parts[:-1])
    name = parts[-1]
    try:
        if _same_content(fd, name, data):
            return
        tmp = f"{_TMP_PREFIX}{os.getpid()}-{name}"[:255]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=fd)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
        try:
            with os.fdopen(out, "wb", closefd=False) as fh:
                fh.write(data)
        finally:
            os.close(out)
        try:
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)
            raise
    finally:
        if fd != root:
            os.close(fd)


def _open_parents(root: int, dirs: tuple[str, ...]) -> int:
    """Open (creating as needed) the directory chain ``dirs`` below ``root``; non-directories are replaced."""
    fd = root
    for name in dirs:
        try:
            st = os.lstat(name, dir_fd=fd)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)  # a file or symlink where a directory must be
                raise FileNotFoundError
        except FileNotFoundError:
            os.mkdir(name, 0o755, dir_fd=fd)
        nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
        if fd != root:
            os.close(fd)
        fd = nxt
    return fd


def _same_content(dir_fd: int, name: str, data: bytes) -> bool:
    """True when ``name`` is a regular file (not a link) holding exactly ``data``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            return False
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read() == data
    finally:
        os.close(fd)


def read_tree(src: Path, exclude: Sequence[str], *, max_file_bytes: int | None = None) -> dict[str, str]:
    """The UTF-8 text files under ``src`` by relative POSIX path; binary files and symlinks are skipped.

    An entry is excluded when its name or its relative path matches a pattern in ``exclude`` (fnmatch);
    ``.git`` always is. Files over ``max_file_bytes`` (when given) are skipped.
    """
    patterns = (*exclude, *ALWAYS_KEPT)
    out: dict[str, str] = {}
    if not src.is_dir() or src.is_symlink():
        return out
    stack: list[tuple[Path, str]] = [(src, "")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}{entry.name}"
            if any(fnmatch.fnmatchcase(entry.name, p) or fnmatch.fnmatchcase(path, p) for p in patterns):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), path + "/"))
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if max_file_bytes is not None and entry.stat(follow_symlinks=False).st_size > max_file_bytes:
                continue
            text = _read_text(Path(entry.path))
            if text is not None:
                out[path] = text
    return dict(sorted(out.items()))


def _read_text(path: Path) -> str | None:
    """The file as text, or None when it is binary (NUL byte or not UTF-8) or unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
