"""Reading a project's preview pointer the seed's way: the KV first, the database second."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC
from typing import Any

from daemon.core import versions
from sync.kv import KV

log = logging.getLogger("previewd")


def parse(raw: bytes | None) -> dict[str, Any] | None:
    """A KV pointer value, or None when absent or not a pointer."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "latestVersionId" in data else None


def read_nowait(kv: KV, user_id: str, project_id: str) -> dict[str, Any] | None:
    """The pointer when a local KV holds it and answers without waiting (the event loop calls this, saving a
    thread hop per read); None means: call `read` in a thread."""
    if not kv.answers_locally:
        return None
    try:
        return parse(kv.get_nowait(versions.pointer_key(user_id, project_id)))
    except (BlockingIOError, sqlite3.Error, ValueError):
        return None


def read(kv: KV, user_id: str, project_id: str) -> dict[str, Any] | None:
    """The seed's retrieve flow: KV first, the database second."""
    key = versions.pointer_key(user_id, project_id)
    try:
        raw = kv.get(key)
    except Exception:
        log.warning("KV read failed for %s; falling back to the database", key, exc_info=True)
        raw = None
    data = parse(raw)
    if data is not None:
        return data
    v = versions.live_version(user_id, project_id)
    if v is None:
        return None
    return {"latestVersionId": v.version_id, "previewUrl": v.preview_url,
            "timestamp": int(v.updated_at.replace(tzinfo=UTC).timestamp() * 1000) if v.updated_at else None}
