"""The sanitised copy every deployer publishes: regular files only, links resolved only inside the output dir,
server code (`_worker.js`, `functions/`, `_routes.json`) removed unless allowed; every drop logged."""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.deployers.base import Deployer, DeployError, Deployment, DeployRequest

# Pages runs these as server code on the operator's account; a static preview never needs them.
SERVER_CODE = ("_worker.js", "functions", "_routes.json")
_CHUNK = 1 << 20


@dataclass
class CopyReport:
    """What went into the copy and what was left out."""

    files: int = 0
    bytes: int = 0
    dropped: int = 0


def sanitized_copy(src: Path, dst: Path, log: Callable[[str], None], *, allow_functions: bool = False,
                   max_bytes: int = 512 * 2**20) -> CopyReport:
    """Copy the output dir `src` into the new directory `dst`, never following a link out of `src`.

    Regular files are copied through file descriptors opened with O_NOFOLLOW below directory fds; a link to a
    regular file that lies inside `src` is replaced by that file's bytes; every other link, device, FIFO or
    socket is left out; `_worker.js`, `_worker.js/`, `functions/` and `_routes.json` at the top are left out
    unless `allow_functions`. Raises DeployError when `src` is not a real directory or the copy passes
    `max_bytes`.
    """
    try:
        root = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        why = "is a link" if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(src) else exc.strerror
        raise DeployError(f"output dir {src} cannot be deployed: {why}") from None
    report = CopyReport()
    try:
        os.mkdir(dst, 0o755)
        _copy_dir(root, "", dst, log, report, allow_functions, max_bytes, root)
    except OSError as exc:
        raise DeployError(f"copying the output failed: {exc}") from None
    finally:
        os.close(root)
    return report


def _copy_dir(dir_fd: int, rel: str, dst: Path, log: Callable[[str], None], report: CopyReport,
              allow_functions: bool, max_bytes: int, root_fd: int) -> None:
    with os.scandir(dir_fd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        path = f"{rel}/{name}" if rel else name
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not rel and name in SERVER_CODE and not allow_functions:
            log(f"removed {path}{'/' if stat.S_ISDIR(st.st_mode) else ''}: server code is not deployed "
                "([deploy] allow_functions = false)")
            report.dropped += 1
            continue
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                os.mkdir(dst / name, 0o755)
                _copy_dir(sub, path, dst / name, log, report, allow_functions, max_bytes, root_fd)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(dir_fd, name, dst / name, path, report, max_bytes)
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=dir_fd)
            inside = _inside(rel, target)
            if inside is None:
                log(f"dropped link {path} -> {target}: it points outside the output dir")
                report.dropped += 1
                continue
            fd = _open_inside(root_fd, inside)
            if fd is None:
                log(f"dropped link {path} -> {target}: its target is not a regular file in the output dir")
                report.dropped += 1
                continue
            with os.fdopen(fd, "rb") as fh:
                _pump(fh, dst / name, path, report, max_bytes)
            log(f"resolved link {path} -> {target} (inside the output dir): deployed as a copy")
        else:
            log(f"dropped {path}: not a regular file (device, FIFO or socket)")
            report.dropped += 1


def _inside(rel_dir: str, target: str) -> str | None:
    """The target of a link in `rel_dir`, relative to the output dir, when it stays inside; None otherwise."""
    if not target or target.startswith("/") or "\0" in target:
        return None
    joined = posixpath.normpath(posixpath.join(rel_dir, target))
    if joined in (".", "") or joined == ".." or joined.startswith("../"):
        return None
    return joined


def _open_inside(root_fd: int, rel: str) -> int | None:
    """An fd of the regular file root/rel reached with no link on the way (O_NOFOLLOW per component)."""
    fd = root_fd
    parts = rel.split("/")
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            if fd != root_fd:
                os.close(fd)
            fd = nxt
        out = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    finally:
        if fd != root_fd:
            os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        return None
    os.set_blocking(out, True)
    return out


def _copy_file(dir_fd: int, name: str, target: Path, rel: str, report: CopyReport, max_bytes: int) -> None:
    # O_NONBLOCK: a FIFO swapped in after the stat must not block the daemon; fstat then refuses it.
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DeployError(f"{rel} changed into a non-regular file during the copy")
        if st.st_uid == os.geteuid() and st.st_nlink == 1 and _link_fd(fh.fileno(), target):
            # The daemon's own unshared file (the staged output, an unpacked artifact): the copy shares its
            # inode, linked through the fd just checked, so a deploy does not write every byte twice.
            report.bytes += st.st_size
            if report.bytes > max_bytes:
                raise DeployError(f"output passes the {max_bytes} byte cap at {rel}")
            report.files += 1
            return
        os.set_blocking(fh.fileno(), True)
        _pump(fh, target, rel, report, max_bytes)


def _link_fd(fd: int, target: Path) -> bool:
    """Hard-link the inode open as `fd` at `target` (/proc/self/fd + AT_SYMLINK_FOLLOW); False when it cannot."""
    try:
        # A dir fd makes os.link call linkat(2), which alone honours AT_SYMLINK_FOLLOW (plain link(2) would not).
        parent = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=parent, follow_symlinks=True)
        finally:
            os.close(parent)
    except OSError:  # another filesystem, no /proc: copied instead
        return False
    return True


def _pump(fh: Any, target: Path, rel: str, report: CopyReport, max_bytes: int) -> None:
    with open(target, "xb") as out:
        while chunk := fh.read(_CHUNK):
            report.bytes += len(chunk)
            if report.bytes > max_bytes:
                raise DeployError(f"output passes the {max_bytes} byte cap at {rel}")
            out.write(chunk)
    report.files += 1


class SanitizingDeployer:
    """Wraps any Deployer: `deploy` hands it a sanitised copy of the output (in a directory no build can see)
    and removes the copy afterwards; everything else passes through."""

    def __init__(self, inner: Deployer, scratch: Path, *, allow_functions: bool = False) -> None:
        self.inner = inner
        self.name = inner.name
        self.serves_previews = inner.serves_previews
        self.supports_alias = inner.supports_alias
        self.counts_pages_quota = inner.counts_pages_quota
        self.records_deployment_id = inner.records_deployment_id
        self.scratch = scratch
        self.allow_functions = allow_functions

    def deploy(self, req: DeployRequest, log: Callable[[str], None]) -> Deployment:
        self.scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="deploy-", dir=self.scratch))
        try:
            copy = tmp / "out"
            report = sanitized_copy(Path(req.out_dir), copy, log, allow_functions=self.allow_functions)
            log(f"deploying a sanitised copy: {report.files} files, {report.bytes} bytes"
                + (f", {report.dropped} entries left out" if report.dropped else ""))
            return self.inner.deploy(DeployRequest(out_dir=copy, user_id=req.user_id, project_id=req.project_id,
                                                   version_id=req.version_id, message=req.message), log)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def status(self, deployment_id: str) -> Deployment:
        return self.inner.status(deployment_id)

    def delete(self, deployment_id: str) -> None:
        self.inner.delete(deployment_id)

    def alias_url(self, user_id: str, project_id: str) -> str | None:
        return self.inner.alias_url(user_id, project_id)

    def __getattr__(self, name: str) -> Any:
        # deploy_zip, close, api, ...: the wrapped deployer's own extras.
        return getattr(self.inner, name)
