"""The one door out of a step's view: copy a directory that generated code can write into a directory only the
caller owns, through file descriptors, so nothing the code swaps in while the copy runs is ever followed.

Every directory is opened below its parent's fd with O_NOFOLLOW (the start below its trusted root with openat2
RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or O_NOFOLLOW per component), every file with
O_NOFOLLOW | O_NONBLOCK and checked with fstat on that fd before a byte is read: regular files with one name only,
apparent sizes counted against the caps first, at most the size counted is copied. A symbolic link is never
followed: one to a regular file inside the exported dir is copied as that file (opened from the root fd, no link
on the way), any other is dropped and logged; so are FIFOs, devices, sockets and hard links. A name that is not
valid UTF-8, holds a control character or a backslash refuses the whole export (`Refused`, naming it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import safepath

_CHUNK = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Never part of what a step hands on: repositories, dependency trees and package stores.
SKIPPED_NAMES = ("node_modules", ".pnpm-store", "pnpm-store")


@dataclass(frozen=True)
class Caps:
    """What one export (or one unpack) may cost: apparent bytes in all, entries (files, dirs, links), bytes per
    file, directory depth and path length; every one checked before the bytes are read."""

    total_bytes: int
    entries: int = 20_000
    file_bytes: int = 25 * 2**20
    depth: int = 64
    path_bytes: int = 1024


class Refused(Exception):
    """The tree cannot cross: `kind` is invalid_name, too_big (a cap on bytes), too_many (entries or depth) or
    no_dir (the start is missing, a link or not a directory); `rel` names the entry."""

    def __init__(self, kind: str, rel: str, why: str) -> None:
        super().__init__(f"{shown(rel)}: {why}")
        self.kind = kind
        self.rel = rel
        self.why = why


@dataclass
class Report:
    """What crossed (files, dirs, bytes) and what was left out (one line each, also logged)."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    dropped: list[str] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return self.files + self.dirs


def shown(rel: str) -> str:
    """A path as a log or an error shows it: bytes that are not UTF-8 as \\xNN escapes, never a raw byte."""
    raw = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in raw)


def check_name(name: str, rel: str) -> None:
    """Refused(invalid_name) for a name that is not valid UTF-8, holds a control character or a backslash, or is
    '.', '..' or empty: what a zip, a URL and git cannot all carry the same way."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused("invalid_name", rel, "the name is not valid UTF-8") from None
    if name in ("", ".", "..") or "/" in name:
        raise Refused("invalid_name", rel, "an empty, '.' or '..' path segment")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "\u2028" in name or "\u2029" in name:
        raise Refused("invalid_name", rel, "the name holds a control character")
    if "\\" in name:
        raise Refused("invalid_name", rel, "the name holds a backslash")


def skipped(name: str) -> bool:
    """True for names that never leave a step: .git*, node_modules and pnpm stores."""
    return name.startswith(".git") or name in SKIPPED_NAMES


class _Walk:
    def __init__(self, root_fd: int, caps: Caps, log: Callable[[str], None]) -> None:
        self.root_fd = root_fd
        self.caps = caps
        self.log = log
        self.report = Report()
        self.seen = 0  # entries looked at, dropped ones too: what the walk costs, not only what crossed

    def drop(self, rel: str, why: str, what: str = "") -> None:
        line = f"dropped {what}{shown(rel)}: {why}"
        self.report.dropped.append(line)
        self.log(line)

    def count(self, rel: str) -> None:
        self.seen += 1
        if self.seen > self.caps.entries:
            raise Refused("too_many", rel, f"more than {self.caps.entries} files and directories")
        if len(rel.encode("utf-8")) > self.caps.path_bytes:
            raise Refused("invalid_name", rel, f"the path is longer than {self.caps.path_bytes} bytes")

    def dir(self, src: int, dst: int, rel: str, depth: int) -> None:
        names: list[str] = []
        room = self.caps.entries - self.seen
        with os.scandir(src) as it:  # streamed: a directory of a million names is refused at the cap, not listed
            for entry in it:
                names.append(entry.name)
                if len(names) > room:
                    raise Refused("too_many", rel or ".", f"more than {self.caps.entries} files and directories")
        for name in sorted(names):
            path = f"{rel}/{name}" if rel else name
            check_name(name, path)
            if skipped(name):
                self.drop(path, "never exported (.git*, node_modules, package stores)")
                continue
            try:
                st = os.stat(name, dir_fd=src, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while the export ran: nothing to copy
            self.count(path)
            if stat.S_ISDIR(st.st_mode):
                self.subdir(src, dst, name, path, depth + 1)
            elif stat.S_ISREG(st.st_mode):
                self.file(src, name, dst, name, path)
            elif stat.S_ISLNK(st.st_mode):
                self.link(src, name, dst, rel, path)
            else:
                self.drop(path, "not a regular file (device, FIFO or socket)")

    def subdir(self, src: int, dst: int, name: str, rel: str, depth: int) -> None:
        if depth > self.caps.depth:
            raise Refused("too_many", rel, f"directories nested deeper than {self.caps.depth}")
        try:
            fd = os.open(name, _DIR, dir_fd=src)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                self.drop(rel, "changed into a link or a file while it was exported")
                return
            if exc.errno == errno.ENOENT:
                return
            raise
        try:
            os.mkdir(name, 0o755, dir_fd=dst)
            out = os.open(name, _DIR, dir_fd=dst)
            try:
                self.report.dirs += 1
                self.dir(fd, out, rel, depth)
            finally:
                os.close(out)
        finally:
            os.close(fd)

    def file(self, src: int, name: str, dst: int, out_name: str, rel: str, opened: int | None = None) -> None:
        try:
            fd = os.open(name, _FILE, dir_fd=src) if opened is None else opened
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENOTDIR):  # swapped for a link, socket or dir
                self.drop(rel, "changed into a link or a non-regular file while it was exported")
                return
            if exc.errno == errno.ENOENT:
                return
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.drop(rel, "not a regular file (device, FIFO or socket)")
                return
            if st.st_nlink != 1:
                self.drop(rel, f"a hard link ({st.st_nlink} names): only files with one name are exported")
                return
            if st.st_size > self.caps.file_bytes:
                raise Refused("too_big", rel, f"{st.st_size} bytes, over the {self.caps.file_bytes} byte cap per file")
            if self.report.bytes + st.st_size > self.caps.total_bytes:
                raise Refused("too_big", rel, f"the output passes {self.caps.total_bytes} bytes here")
            os.set_blocking(fd, True)
            out = os.open(out_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o755 if st.st_mode & 0o111 else 0o644, dir_fd=dst)
            try:
                # The code may still be growing the file: exactly the bytes counted cross, never more.
                self.report.bytes += _copy(fd, out, st.st_size)
            finally:
                os.close(out)
            self.report.files += 1
        finally:
            os.close(fd)

    def link(self, src: int, name: str, dst: int, rel_dir: str, rel: str) -> None:
        try:
            target = os.readlink(name, dir_fd=src)
        except OSError:
            self.drop(rel, "changed while it was exported")
            return
        inside = _inside(rel_dir, target)
        if inside is None:
            self.drop(f"{rel} -> {target}", "it points outside the output dir", "link ")
            return
        try:
            fd = safepath.open_beneath_fd(self.root_fd, inside, _FILE)
        except (OSError, ValueError):
            fd = -1
        if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
            if fd >= 0:
                os.close(fd)
            self.drop(f"{rel} -> {target}", "its target is not a regular file in the output dir", "link ")
            return
        self.file(src, name, dst, name, rel, opened=fd)
        self.log(f"resolved link {shown(rel)} -> {shown(target)} (inside the output dir): exported as a copy")


def _inside(rel_dir: str, target: str) -> str | None:
    """A link's target relative to the exported root when it stays inside it; None otherwise."""
    if not target or target.startswith("/") or "\0" in target:
        return None
    joined = posixpath.normpath(posixpath.join(rel_dir, target))
    if joined in (".", "", "..") or joined.startswith("../"):
        return None
    return joined


def _copy(src: int, dst: int, size: int) -> int:
    """Copy at most `size` bytes from src to dst (in-kernel where it can); returns the bytes copied."""
    done = 0
    with contextlib.suppress(OSError):
        while done < size and (n := os.copy_file_range(src, dst, min(size - done, 1 << 30))):
            done += n
    if done == 0 or done < size:  # copy_file_range unsupported here (or the file shrank): plain reads
        while done < size and (chunk := os.pread(src, min(_CHUNK, size - done), done)):
            os.pwrite(dst, chunk, done)
            done += len(chunk)
    return done


def export_tree(root: Path, rel: str | Sequence[str], dest: Path, caps: Caps,
                log: Callable[[str], None] = lambda _l: None) -> Report:
    """Copy root/rel (reached with no link on the way) into the new directory `dest`; see the module docstring.

    Raises Refused (dest is removed then), OSError for the daemon's own I/O failures.
    """
    parts = safepath.split_rel(rel)
    try:
        src = safepath.open_beneath(root, parts, os.O_RDONLY | os.O_DIRECTORY)
    except (safepath.UnsafePath, FileNotFoundError, NotADirectoryError) as exc:
        raise Refused("no_dir", "/".join(parts), f"cannot be exported: {exc}") from None
    try:
        os.mkdir(dest, 0o755)
        try:
            out = os.open(dest, _DIR)
            try:
                walk = _Walk(src, caps, log)
                walk.dir(src, out, "", 0)
                return walk.report
            finally:
                os.close(out)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        os.close(src)
