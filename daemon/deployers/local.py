"""The `local` deployer: publishes build output into `previews/<deploymentId>/` for the preview server.

A deploy reuses the unchanged files of the project's previous deployment as hard links (compared byte for byte,
reached only through directory fds with O_NOFOLLOW), so its cost follows the change, not the site. Deployed files
are read-only (0444) and live in a tree no build can see, so a shared inode is never written again.

Long because the tree copy and the artifact unpack (the rollback's fast path) share the caps, the checks on every
entry and the atomic publish, so both ways into the previews tree read top to bottom in one place.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from daemon.deployers.base import DeployError, Deployment, DeployRequest
from daemon.deployers.previewnames import DEPLOYMENT_ID_RE, deployment_id_for, preview_url

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
# Work dirs start with a dot so they can never match DEPLOYMENT_ID_RE and be served half-written.
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_COPY_CHUNK = 1024 * 1024
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DEPLOYED_MODE = 0o444  # a deployed file is never written again: a hard link to it is as good as a copy


_READABLE_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


def _check_id(deployment_id: str) -> None:
    if not isinstance(deployment_id, str) or not DEPLOYMENT_ID_RE.match(deployment_id):
        raise DeployError(f"invalid deployment id {deployment_id!r}: expected a lowercase DNS label")


class LocalDeployer:
    """Deploys by copying output into `previews_dir/<deploymentId>/`; the daemon's preview server serves it.

    Every publish is atomic (build in a dot-prefixed temp dir beside the target, then rename), symlinks in
    the output are skipped and logged, and a failure leaves no partial directory behind.
    """

    name = "local"
    serves_previews = True
    supports_alias = False
    counts_pages_quota = False
    records_deployment_id = False  # the id follows from the version (deployment_id_for)

    def __init__(
        self,
        previews_dir: Path,
        preview_domain: str = "localhost",
        port: int = 8080,
        scheme: str = "http",
        max_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.previews_dir = Path(previews_dir)
        self.preview_domain = preview_domain.strip(".").lower()
        self.port = port
        self.scheme = scheme
        self.max_bytes = max_bytes
        # The last deployment of each (user, project): the next deploy links its unchanged files. In memory only:
        # after a restart a project's first deploy copies everything.
        self._last: dict[tuple[str, str], str] = {}

    def url_for(self, deployment_id: str) -> str:
        """The preview URL of a deployment id."""
        return preview_url(deployment_id, self.preview_domain, self.port, self.scheme)

    def deploy(self, req: DeployRequest, log: Callable[[str], None]) -> Deployment:
        """Copy `req.out_dir` (never following symlinks) into a fresh deployment and return it as deployed."""
        dep_id = deployment_id_for(req.project_id, req.version_id)
        src = Path(req.out_dir)
        try:
            st = os.lstat(src)
        except OSError as exc:
            raise DeployError(f"output dir {src} cannot be read: {exc.strerror}") from exc
        if stat.S_ISLNK(st.st_mode):
            raise DeployError(f"output dir {src} is a symlink; refusing to deploy it")
        if not stat.S_ISDIR(st.st_mode):
            raise DeployError(f"output dir {src} is not a directory")
        tmp = self._make_tmp(dep_id)
        key = (req.user_id, req.project_id)
        prev_fd = self._open_previous(self._last.get(key), dep_id)
        try:
            files, size, linked = self._copy_tree(src, tmp, log, prev_fd)
            self._publish(tmp, dep_id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            if prev_fd is not None:
                os.close(prev_fd)
        self._last[key] = dep_id
        reused = f", {linked} unchanged files linked from the previous deployment" if linked else ""
        log(f"deployed {files} files ({size} bytes) as {dep_id}{reused}")
        return Deployment(dep_id, self.url_for(dep_id), "deployed", f"{files} files, {size} bytes")

    def deploy_zip(
        self, zip_path: Path, req: DeployRequest, log: Callable[[str], None], prefix: str = ""
    ) -> Deployment:
        """Unpack an artifact zip as `req`'s deployment (the rollback fast path; `req.out_dir` is unused).

        Only entries under `prefix/` are taken when a prefix is given. The whole zip is refused, writing
        nothing, when any entry is absolute, climbs with `..`, uses backslashes, is a link or a device,
        is encrypted, appears twice, or the unpacked size passes `max_bytes`.
        """
        dep_id = deployment_id_for(req.project_id, req.version_id)
        try:
            zf = zipfile.ZipFile(zip_path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DeployError(f"artifact {zip_path} is not a readable zip: {exc}") from exc
        with zf:
            plan = self._plan_zip(zf, prefix.strip("/"))
            tmp = self._make_tmp(dep_id)
            try:
                files, size = self._extract(zf, plan, tmp)
                self._publish(tmp, dep_id)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        log(f"deployed {files} files ({size} bytes) from {Path(zip_path).name} as {dep_id}")
        return Deployment(dep_id, self.url_for(dep_id), "deployed", f"{files} files, {size} bytes")

    def status(self, deployment_id: str) -> Deployment:
        """`deployed` when the deployment's directory exists, `failed` (detail `not found`) otherwise."""
        _check_id(deployment_id)
        path = self.previews_dir / deployment_id
        url = self.url_for(deployment_id)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return Deployment(deployment_id, url, "failed", "not found")
        except OSError as exc:
            raise DeployError(f"cannot read deployment {deployment_id}: {exc.strerror}") from exc
        if not stat.S_ISDIR(st.st_mode):
            return Deployment(deployment_id, url, "failed", "not found")
        return Deployment(deployment_id, url, "deployed")

    def delete(self, deployment_id: str) -> None:
        """Remove a deployment; succeeds when it is already gone."""
        _check_id(deployment_id)
        path = self.previews_dir / deployment_id
        trash = self.previews_dir / f"{_TRASH_PREFIX}{deployment_id}-{secrets.token_hex(4)}"
        try:
            # Rename first so the preview disappears at once, then remove at leisure.
            os.rename(path, trash)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DeployError(f"cannot delete deployment {deployment_id}: {exc.strerror}") from exc
        shutil.rmtree(trash, ignore_errors=True)

    def alias_url(self, user_id: str, project_id: str) -> str | None:
        """None: no platform alias here (a fleet's `<project>--<user>` host is daemon/fleet/leased.py's)."""
        return None

    def sweep_partial(self) -> list[str]:
        """Remove temp and trash dirs a dead process left behind; call once at start-up, before deploying."""
        removed: list[str] = []
        try:
            entries = list(os.scandir(self.previews_dir))
        except FileNotFoundError:
            return removed
        for entry in entries:
            if entry.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
        return removed

    # -- internals ---------------------------------------------------------------------------------------

    def _make_tmp(self, dep_id: str) -> Path:
        try:
            self.previews_dir.mkdir(parents=True, exist_ok=True)
            if self.previews_dir.is_symlink():  # never publish through a link planted in the daemon's paths
                raise DeployError(f"previews dir {self.previews_dir} is a symbolic link; refusing to deploy there")
            tmp = self.previews_dir / f"{_TMP_PREFIX}{dep_id}-{secrets.token_hex(4)}"
            tmp.mkdir(mode=0o755)
        except OSError as exc:
            raise DeployError(f"cannot create a deployment in {self.previews_dir}: {exc.strerror}") from exc
        return tmp

    def _publish(self, tmp: Path, dep_id: str) -> None:
        """Rename the finished temp dir into place; a redeploy of the same id replaces the old one."""
        final = self.previews_dir / dep_id
        trash: Path | None = None
        try:
            if os.path.lexists(final):
                trash = self.previews_dir / f"{_TRASH_PREFIX}{dep_id}-{secrets.token_hex(4)}"
                os.rename(final, trash)
            try:
                os.rename(tmp, final)
            except OSError:
                if trash is not None:
                    os.rename(trash, final)
                    trash = None
                raise
        except OSError as exc:
            raise DeployError(f"cannot publish deployment {dep_id}: {exc.strerror}") from exc
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def _open_previous(self, prev_id: str | None, dep_id: str) -> int | None:
        """A dir fd of the previous deployment to link unchanged files from (None: none, or not a plain dir)."""
        if prev_id is None or prev_id == dep_id:
            return None
        try:
            return os.open(self.previews_dir / prev_id, _DIR_FLAGS)
        except OSError:
            return None

    def _copy_tree(self, src: Path, dst: Path, log: Callable[[str], None],
                   prev_fd: int | None = None) -> tuple[int, int, int]:
        """Copy regular files and dirs; fwalk, dir_fd and O_NOFOLLOW never read through a swapped-in link. A file
        equal to the previous deployment's at the same path is hard-linked from it instead of written."""
        files = total = linked = 0
        prev_dirs: dict[str, int | None] = {".": prev_fd}  # the previous deployment's dirs, opened top-down
        try:
            for dirpath, dirnames, filenames, dirfd in os.fwalk(src, follow_symlinks=False):
                rel_dir = os.path.relpath(dirpath, src)
                target_dir = dst if rel_dir == "." else dst / rel_dir
                target_dir.mkdir(mode=0o755, exist_ok=True)
                prev_dir = self._prev_dir(prev_dirs, rel_dir)
                for name in dirnames:
                    if stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode):
                        log(f"skipped symlink {_rel(rel_dir, name)}: symlinks are never deployed")
                dst_fd = os.open(target_dir, _DIR_FLAGS)
                try:
                    for name in filenames:
                        rel = _rel(rel_dir, name)
                        mode = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
                        if stat.S_ISLNK(mode):
                            log(f"skipped symlink {rel}: symlinks are never deployed")
                            continue
                        if not stat.S_ISREG(mode):
                            log(f"skipped {rel}: not a regular file")
                            continue
                        size, reused = self._copy_file(name, dirfd, dst_fd, rel, total, prev_dir)
                        total += size
                        linked += reused
                        files += 1
                finally:
                    os.close(dst_fd)
        except OSError as exc:
            raise DeployError(f"copying the output failed: {exc}") from exc
        finally:
            for rel_dir, fd in prev_dirs.items():
                if fd is not None and rel_dir != ".":
                    os.close(fd)
        return files, total, linked

    @staticmethod
    def _prev_dir(prev_dirs: dict[str, int | None], rel_dir: str) -> int | None:
        """The previous deployment's dir at rel_dir (its parent's fd, O_NOFOLLOW), None when it has none."""
        if rel_dir not in prev_dirs:
            parent, _, name = rel_dir.rpartition("/")
            parent_fd = prev_dirs.get(parent or ".")
            fd: int | None = None
            if parent_fd is not None:
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
                except OSError:
                    fd = None
            prev_dirs[rel_dir] = fd
        return prev_dirs[rel_dir]

    def _copy_file(self, name: str, dirfd: int, dst_fd: int, rel: str, so_far: int,
                   prev_dir: int | None = None) -> tuple[int, int]:
        """Write one file (0444); (its size, 1 when it was linked from the previous deployment else 0)."""
        fd = os.open(name, _FILE_FLAGS, dir_fd=dirfd)
        with os.fdopen(fd, "rb") as fsrc:
            st = os.fstat(fsrc.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise DeployError(f"{rel} changed into a non-regular file during the copy")
            os.set_blocking(fsrc.fileno(), True)
            if so_far + st.st_size > self.max_bytes:
                raise DeployError(f"output passes the {self.max_bytes} byte cap at {rel}")
            if prev_dir is not None and _link_same(fsrc, st.st_size, prev_dir, name, dst_fd):
                return st.st_size, 1
            fsrc.seek(0)
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                          dir_fd=dst_fd)
            with os.fdopen(out, "wb") as fdst:
                size = self._pump(fsrc.read, fdst.write, rel, so_far)
                os.fchmod(fdst.fileno(), _DEPLOYED_MODE)
            return size, 0

    def _pump(self, read: Callable[[int], bytes], write: Callable[[bytes], object], rel: str, so_far: int) -> int:
        copied = 0
        while chunk := read(_COPY_CHUNK):
            copied += len(chunk)
            if so_far + copied > self.max_bytes:
                raise DeployError(f"output passes the {self.max_bytes} byte cap at {rel}")
            write(chunk)
        return copied

    def _plan_zip(self, zf: zipfile.ZipFile, prefix: str) -> list[tuple[zipfile.ZipInfo, list[str]]]:
        """Check every entry before anything is written; return (entry, target segments) for the kept ones."""
        prefix_parts = _safe_parts(prefix, prefix) if prefix else []
        plan: list[tuple[zipfile.ZipInfo, list[str]]] = []
        seen: set[str] = set()
        declared = 0
        for info in zf.infolist():
            name = info.filename
            parts = _safe_parts(name, name)
            if info.flag_bits & 0x1:
                raise DeployError(f"refused zip entry {name!r}: encrypted")
            # Checked here so zipfile never meets a method it cannot read half-way through the unpack.
            if info.compress_type not in _READABLE_COMPRESSION:
                raise DeployError(f"refused zip entry {name!r}: unsupported compression {info.compress_type}")
            ftype = stat.S_IFMT(info.external_attr >> 16)
            if ftype == stat.S_IFLNK:
                raise DeployError(f"refused zip entry {name!r}: symlink")
            if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DeployError(f"refused zip entry {name!r}: not a regular file or directory")
            key = "/".join(parts)
            if key in seen:
                raise DeployError(f"refused zip entry {name!r}: appears twice")
            seen.add(key)
            if parts[: len(prefix_parts)] != prefix_parts:
                continue
            parts = parts[len(prefix_parts) :]
            if not parts:
                continue
            declared += info.file_size
            if declared > self.max_bytes:
                raise DeployError(f"artifact unpacks past the {self.max_bytes} byte cap")
            plan.append((info, parts))
        if not plan:
            raise DeployError(f"artifact has no files{' under ' + prefix if prefix else ''}")
        return plan

    def _extract(
        self, zf: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, list[str]]], tmp: Path
    ) -> tuple[int, int]:
        files = total = 0
        try:
            for info, parts in plan:
                target = tmp.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                # Count real bytes: a zip's declared sizes are only a claim.
                with zf.open(info) as fsrc, open(target, "xb") as fdst:
                    total += self._pump(fsrc.read, fdst.write, info.filename, total)
                    os.fchmod(fdst.fileno(), _DEPLOYED_MODE)
                files += 1
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DeployError(f"unpacking the artifact failed: {exc}") from exc
        return files, total


def _link_same(fsrc: BinaryIO, size: int, prev_dir: int, name: str, dst_fd: int) -> bool:
    """Hard-link the previous deployment's `name` into dst_fd when it holds exactly fsrc's bytes."""
    try:
        old = os.open(name, _FILE_FLAGS, dir_fd=prev_dir)
    except OSError:  # absent, a link (O_NOFOLLOW), a dir: written afresh
        return False
    try:
        ost = os.fstat(old)
        # Only a file this deployer wrote: regular, read-only, the daemon's own (a FIFO or another's inode is never
        # read, let alone shared).
        if (not stat.S_ISREG(ost.st_mode) or ost.st_size != size or ost.st_uid != os.geteuid()
                or stat.S_IMODE(ost.st_mode) != _DEPLOYED_MODE):
            return False
        os.set_blocking(old, True)
        with os.fdopen(os.dup(old), "rb") as fold:
            while chunk := fsrc.read(_COPY_CHUNK):
                if fold.read(len(chunk)) != chunk:
                    return False
        try:
            # The inode compared, through its fd (/proc/self/fd + AT_SYMLINK_FOLLOW): never the name again.
            os.link(f"/proc/self/fd/{old}", name, dst_dir_fd=dst_fd, follow_symlinks=True)
        except OSError:  # EMLINK (too many versions share it), no /proc, ...: a copy does as well
            return False
        return True
    finally:
        os.close(old)


def _rel(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}"


def _safe_parts(path: str, shown: str) -> list[str]:
    """Split a zip path into segments, refusing anything that could land outside the target dir."""
    if "\x00" in path or "\\" in path:
        raise DeployError(f"refused zip entry {shown!r}: NUL or backslash in the path")
    if path.startswith("/") or _DRIVE_RE.match(path):
        raise DeployError(f"refused zip entry {shown!r}: absolute path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise DeployError(f"refused zip entry {shown!r}: empty, '.' or '..' path segment")
    return parts
