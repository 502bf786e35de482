"""Objects a version leaves behind (artifact zips, packs, screenshots): written to the local store, uploads queued."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core import quotas
from daemon.core.db import ProjectVersion, database

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.artifacts")


def register_artifact(rt: Runtime, v: ProjectVersion, key: str, path: Path) -> str | None:
    """The zip is in the local store; queue its upload when a remote store exists. Returns the URL known now
    (None until the upload is confirmed, which sets it: `versions.confirm_artifact`)."""
    quotas.add_storage(v.user_id, path.stat().st_size)  # a new key: each version has its own zip
    if rt.remote_objects is None:
        return rt.local_objects.url(key)
    with database.atomic():
        rt.outbox.add(database.connection(), "objects", key,
                      {"key": key, "path": str(path), "content_type": "application/zip", "version_id": v.version_id})
    return None


def store_object(rt: Runtime, key: str, data: bytes, content_type: str) -> Path:
    """Write an object into the local store (atomically) and queue its upload when a remote store exists."""
    path = rt.layout.local_object(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    old = path.stat().st_size if path.is_file() else 0
    os.replace(tmp, path)
    quotas.add_storage(key.split("/", 1)[0], len(data) - old)  # keys start with the user id
    if rt.remote_objects is not None:
        with database.atomic():
            rt.outbox.add(database.connection(), "objects", key,
                          {"key": key, "path": str(path), "content_type": content_type, "version_id": None})
    return path


def zip_output(out_dir: Path, dest: Path) -> int:
    """Zip a build output dir (regular files only: no links, no .git*, no pnpm store); returns its size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(out_dir.rglob("*")):
            rel = path.relative_to(out_dir)
            if any(part.startswith(".git") or part in ("node_modules", ".pnpm-store", "pnpm-store")
                   for part in rel.parts):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            zf.write(path, rel.as_posix())
    tmp.replace(dest)
    return dest.stat().st_size


def artifact_zip(rt: Runtime, t: ProjectVersion) -> Path | None:
    """The target's artifact zip on local disk (fetched from the remote store if only it has it)."""
    key = rt.layout.artifact_key(t.user_id, t.project_id, t.version_id)
    local = rt.layout.local_object(key)
    if local.is_file():
        return local
    try:
        if rt.local_objects.exists(key):  # archived by the retention cleanup: still on this disk
            rt.local_objects.get_file(key, local)
            return local
    except Exception:
        log.warning("could not read archived %s", key, exc_info=True)
    if rt.remote_objects is not None:
        try:
            if rt.remote_objects.exists(key):
                rt.remote_objects.get_file(key, local)
                return local
        except Exception:
            log.warning("could not fetch %s from the object store", key, exc_info=True)
    return None


def extract_artifact(zip_path: Path, dest: Path) -> None:
    """Unpack an artifact zip, refusing entries that would land outside dest or are links."""
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise ValueError(f"artifact entry {info.filename!r} is a link")
            target = (dest / info.filename).resolve()
            if not str(target).startswith(str(root) + "/"):
                raise ValueError(f"artifact entry {info.filename!r} escapes the output dir")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
