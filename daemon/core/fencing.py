"""Fencing a fleet's writes: every replicated row and pointer move leaving this droplet carries its lease epoch.

The outbox rows are stamped when they are written (inside the caller's transaction), with the epoch this
droplet holds the project at; Postgres and the KV handler refuse a stamp older than the project's lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from daemon.core.db import Project
from sync.outbox import EnabledOutbox, Outbox


class FencedOutbox(EnabledOutbox):
    """The outbox writer of a fleet droplet: stamps ``epoch`` on replica records and KV pointer moves."""

    def __init__(self, outbox: Outbox, enabled: set[str], epoch_of: Callable[[str, str], int]) -> None:
        super().__init__(outbox, enabled)
        self.epoch_of = epoch_of

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> None:
        """Stamp and pass on; deletes and objects carry no project epoch."""
        if destination == "replica" and "user_id" in payload:
            payload = {**payload, "epoch": self.epoch_of(payload["user_id"], payload["project_id"])}
        elif destination == "kv" and isinstance(payload.get("value"), str) and ":" in key:
            user_id, _, project_id = key.partition(":")
            payload = {**payload, "epoch": self.epoch_of(user_id, project_id), "user_id": user_id,
                       "project_id": project_id, **_head(payload["value"], user_id, project_id)}
        super().add(conn, destination, key, payload)


def _head(value: str, user_id: str, project_id: str) -> dict[str, Any]:
    """The live version and undo/redo stacks the pointer move makes the project's head in Postgres."""
    try:
        live = json.loads(value).get("latestVersionId")
    except (ValueError, AttributeError):
        return {}
    proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
    return {"live_version_id": live, "undo": proj.stack("undo") if proj else [],
            "redo": proj.stack("redo") if proj else []}
