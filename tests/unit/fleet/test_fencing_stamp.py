"""A fleet droplet's outbox rows carry its lease epoch (issue 16): replica records and KV pointer moves, with the
live version and undo/redo stacks the pointer move records in Postgres; deletes and objects pass unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.core.db import Project, connect, database
from daemon.core.fencing import FencedOutbox


class Recorder:
    """The part of sync's Outbox the wrapper calls."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict[str, Any]]] = []

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> int:
        self.rows.append((destination, key, payload))
        return len(self.rows)


def test_outbox_rows_are_stamped_with_the_epoch_of_their_project(tmp_path: Path) -> None:
    connect(tmp_path)
    inner = Recorder()
    epochs = {("u", "p"): 7}
    box = FencedOutbox(inner, {"replica", "kv", "objects"}, lambda u, p: epochs.get((u, p), 0))  # type: ignore[arg-type]
    with database.connection_context():
        Project.create(user_id="u", project_id="p", live_version_id="V2", undo_stack='["V1"]', redo_stack="[]")
        box.add(None, "replica", "V2", {"version_id": "V2", "user_id": "u", "project_id": "p"})
        box.add(None, "replica", "V3", {"version_id": "V3", "user_id": "u", "project_id": "other"})
        box.add(None, "kv", "u:p", {"key": "u:p", "value": json.dumps({"latestVersionId": "V2"}), "ttl": 60})
        box.add(None, "replica", "V0", {"delete": "V0"})
        box.add(None, "objects", "u/p/x.zip", {"key": "u/p/x.zip", "path": "/x"})
    (_, _, rec), (_, _, other), (_, _, kv), (_, _, delete), (_, _, obj) = inner.rows
    assert rec["epoch"] == 7 and other["epoch"] == 0  # never held here: 0, refused once any droplet leases it
    assert kv["epoch"] == 7 and kv["live_version_id"] == "V2" and kv["undo"] == ["V1"] and kv["redo"] == []
    assert "epoch" not in delete and "epoch" not in obj
