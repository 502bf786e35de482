"""How a local deployment answers a path: the file, a directory's index.html, `<path>.html`, or the SPA's
index.html; opened by fd under the deployment's directory fd, never through a link, a FIFO or a socket.

The preview server (daemon/api/previews.py) and the render check's origin (daemon/render/origin.py) both answer
from here, so the render check sees what a visitor gets.
"""

from __future__ import annotations

import errno
import mimetypes
import os
import re
import stat

# Vite/Rollup name emitted assets `assets/<name>-<hash>.<ext>`; the hash is base64url-ish.
_HASHED_RE = re.compile(r"-[A-Za-z0-9_-]{6,}\.[A-Za-z0-9]+$")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in a deployment must not hang the event loop on open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

# Open errors that mean "nothing servable here" (ELOOP: a symlink met O_NOFOLLOW; ENXIO: a socket).
_ABSENT = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EACCES, errno.ENXIO}

_TEXT = "; charset=utf-8"
_TYPES: dict[str, str] = {
    ".html": "text/html" + _TEXT,
    ".htm": "text/html" + _TEXT,
    ".js": "text/javascript" + _TEXT,
    ".mjs": "text/javascript" + _TEXT,
    ".cjs": "text/javascript" + _TEXT,
    ".css": "text/css" + _TEXT,
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".txt": "text/plain" + _TEXT,
    ".xml": "application/xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
}


def content_type_for(name: str) -> str:
    """The Content-Type for a file name: our table first (stable across hosts), then `mimetypes`."""
    ext = os.path.splitext(name)[1].lower()
    known = _TYPES.get(ext)
    if known:
        return known
    guessed = mimetypes.guess_type(name)[0]
    if not guessed:
        return "application/octet-stream"
    return guessed + _TEXT if guessed.startswith("text/") else guessed


def is_hashed_asset(rel_path: str) -> bool:
    """True for Vite-style fingerprinted files (`assets/<name>-<hash>.<ext>`), safe to cache forever."""
    return rel_path.startswith("assets/") and bool(_HASHED_RE.search(rel_path))


class Found:
    """An open regular file of a deployment: its fd (the caller closes it), path, size and ETag."""

    __slots__ = ("etag", "fd", "rel", "size")

    def __init__(self, fd: int, rel: str, st: os.stat_result) -> None:
        self.fd = fd
        self.rel = rel
        self.size = st.st_size
        # Deployments never change in place, so size + mtime identifies the bytes well enough.
        self.etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'.encode("ascii")


def open_file(dfd: int, segs: list[str]) -> tuple[int, os.stat_result] | None:
    """Open segs under dfd without following a symlink at any level; None when absent or not servable."""
    if ".." in segs:  # the request check already refused these; a second guard costs one scan
        return None
    opened: list[int] = []
    try:
        parent = dfd
        for seg in segs[:-1]:
            parent = os.open(seg, DIR_FLAGS, dir_fd=parent)
            opened.append(parent)
        fd = os.open(segs[-1], _FILE_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    finally:
        for d in opened:
            os.close(d)
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return fd, st
    os.close(fd)
    return None


def resolve(dfd: int, segs: list[str]) -> Found | None:
    """Map a request path to a file: the file, a dir's index.html, `<path>.html`, or the SPA's index.html."""
    candidates: list[list[str]] = []
    if segs:
        candidates.append(segs)
    last = segs[-1] if segs else ""
    extensionless = not os.path.splitext(last)[1]
    for cand in candidates:
        got = open_file(dfd, cand)
        if got is None:
            continue
        fd, st = got
        if stat.S_ISREG(st.st_mode):
            return Found(fd, "/".join(cand), st)
        os.close(fd)  # a directory: its own index.html, then the fallbacks below
        if extensionless:
            candidates.append([*cand, "index.html"])
    if extensionless:
        fallbacks = ([[*segs[:-1], last + ".html"]] if segs else []) + [["index.html"]]
        for cand in fallbacks:
            got = open_file(dfd, cand)
            if got is not None:
                fd, st = got
                if stat.S_ISREG(st.st_mode):
                    return Found(fd, "/".join(cand), st)
                os.close(fd)
    return None




class BadPath(ValueError):
    """A request path no deployment file can have (NUL, backslash, dot segments)."""


def segments(path: str) -> list[str]:
    """The non-empty segments of a request path; BadPath for NUL, backslashes or `.`/`..` segments."""
    if "\x00" in path or "\\" in path:
        raise BadPath("NUL or backslash in the path")
    segs = [s for s in path.split("/") if s]
    if any(s == ".." or s == "." for s in segs):
        raise BadPath("dot segments are not allowed")
    return segs
