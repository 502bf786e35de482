"""Objects a version leaves behind (artifact zips, packs, screenshots): written to the local store, uploads queued."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core import quotas
from daemon.core.db import ProjectVersion, database
from sandbox import export, safepath

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


def drop_unfinished(rt: Runtime, version_ids: list[str]) -> None:
    """At start-up: the artifact zips of versions a killed daemon left unfinished (they never went live) are
    removed, and their users' stored bytes recounted."""
    users = set()
    for vid in version_ids:
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == vid)
        if v is None:
            continue
        path = rt.layout.local_object(rt.layout.artifact_key(v.user_id, v.project_id, vid))
        if path.is_file():
            path.unlink()
            users.add(v.user_id)
        path.with_suffix(".zip.tmp").unlink(missing_ok=True)
    for user in users:
        quotas.refresh_storage(rt.layout.data_dir / "objects", user)


def store_object(rt: Runtime, key: str, data: bytes, content_type: str) -> Path:
    """Write an object into the local store (atomically) and queue its upload when a remote store exists."""
    path = rt.layout.local_object(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(data)
        old = path.stat().st_size if path.is_file() else 0
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half an object behind
        raise
    quotas.add_storage(key.split("/", 1)[0], len(data) - old)  # keys start with the user id
    if rt.remote_objects is not None:
        with database.atomic():
            rt.outbox.add(database.connection(), "objects", key,
                          {"key": key, "path": str(path), "content_type": content_type, "version_id": None})
    return path


def zip_output(out_dir: Path, dest: Path) -> int:
    """Zip a staged output dir (daemon/project/staging.py: a copy no build can write, names already checked), regular
    files only; returns the zip's size. The temp file is removed on every exit."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for rel, _st in sorted(safepath.walk_regular(out_dir)):
                if not any(export.skipped(part) for part in rel.split("/")):
                    zf.write(out_dir / rel, rel)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def extract_artifact(zip_path: Path, dest: Path, caps: export.Caps) -> export.Report:
    """Unpack an artifact zip into the empty dir `dest` under `caps` (staging.caps: the same as a build's output):
    ValueError for an entry that is a link, escapes dest, has a name export refuses, or passes a cap, checked on
    the declared sizes before anything is written and on the bytes as they come."""
    report = export.Report()
    with zipfile.ZipFile(zip_path) as zf:
        plan = _plan_unpack(zf.infolist(), caps)
        for info, parts in plan:
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                report.dirs += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            left = min(caps.file_bytes, caps.total_bytes - report.bytes)
            with zf.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(1 << 20):
                    left -= len(chunk)
                    if left < 0:  # the declared size was a lie
                        raise ValueError(f"artifact entry {export.shown(info.filename)!r} unpacks past its cap")
                    out.write(chunk)
                    report.bytes += len(chunk)
            report.files += 1
    return report


def _plan_unpack(infos: list[zipfile.ZipInfo], caps: export.Caps) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Every entry checked before anything is written: names, type, count, declared sizes."""
    if len(infos) > caps.entries:
        raise ValueError(f"artifact has {len(infos)} entries, over the cap of {caps.entries}")
    declared = 0
    plan = []
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:
            raise ValueError(f"artifact entry {export.shown(name)!r} is a link")
        if name.startswith("/") or "\\" in name:
            raise ValueError(f"artifact entry {export.shown(name)!r} escapes the output dir")
        parts = [p for p in name.split("/") if p]
        if not parts or len(name.encode("utf-8", "surrogateescape")) > caps.path_bytes or len(parts) > caps.depth:
            raise ValueError(f"artifact entry {export.shown(name)!r} has an empty or too long path")
        for p in parts:
            try:
                export.check_name(p, name)
            except export.Refused as exc:
                raise ValueError(f"artifact entry {export.shown(name)!r}: {exc.why}") from None
        key = "/".join(parts)
        if key in seen:
            raise ValueError(f"artifact entry {export.shown(name)!r} appears twice")
        seen.add(key)
        if info.file_size > caps.file_bytes:
            raise ValueError(f"artifact entry {export.shown(name)!r} is {info.file_size} bytes, over the per-file cap")
        declared += info.file_size
        if declared > caps.total_bytes:
            raise ValueError(f"artifact unpacks past {caps.total_bytes} bytes")
        plan.append((info, parts))
    return plan
