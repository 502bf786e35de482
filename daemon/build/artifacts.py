"""Objects a version leaves behind (artifact zips, packs, screenshots): written to the local store, uploads queued."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core.db import ProjectVersion, database

if TYPE_CHECKING:
    from daemon.runtime import Runtime


def register_artifact(rt: Runtime, v: ProjectVersion, key: str, path: Path) -> str | None:
    """The zip is in the local store; queue its upload when a remote store exists. Returns the URL known now
    (None until the upload is confirmed, which sets it: `versions.confirm_artifact`)."""
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
    os.replace(tmp, path)
    if rt.remote_objects is not None:
        with database.atomic():
            rt.outbox.add(database.connection(), "objects", key,
                          {"key": key, "path": str(path), "content_type": content_type, "version_id": None})
    return path
