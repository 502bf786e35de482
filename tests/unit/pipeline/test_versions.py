"""The one record format and the one camelCase JSON: from a model, from a raw SQLite row, from a replica record."""

from __future__ import annotations

import json
import sqlite3

from daemon.core import versions
from daemon.core.db import ProjectVersion, database
from daemon.publish.golive import make_live
from sync.replica.base import RECORD_FIELDS, validate_record
from tests.unit.pipeline.conftest import Bench


def _row(bench: Bench) -> ProjectVersion:
    v = versions.create(bench.rt.outbox, user_id="u", project_id="p", prompt="a shop", kind="new")
    return versions.update(bench.rt.outbox, v.version_id, claude_json={"name": "shop"}, pinned=True,
                           build_duration_ms=1200)


def test_record_of_a_model_and_of_a_raw_row_agree_and_validate(bench: Bench) -> None:
    v = _row(bench)
    rec = versions.to_record(v)
    assert list(rec) == list(RECORD_FIELDS)
    assert validate_record(rec) is rec
    conn = sqlite3.connect(str(bench.rt.layout.data_dir / "state.db"))
    cur = conn.execute("SELECT * FROM project_versions WHERE version_id = ?", (v.version_id,))
    raw = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    conn.close()
    assert versions.record_of(raw) == rec
    assert rec["claude_json"] == {"name": "shop"} and rec["pinned"] is True


def test_a_record_rebuilds_the_row_it_came_from(bench: Bench) -> None:
    v = _row(bench)
    rec = versions.to_record(v)
    with database.atomic():
        ProjectVersion.delete().where(ProjectVersion.version_id == v.version_id).execute()
        ProjectVersion.create(**versions.row_from_record(rec))
    back = versions.to_record(ProjectVersion.get_by_id(v.version_id))
    assert back == rec


def test_version_json_is_the_same_shape_for_local_rows_and_replica_records(bench: Bench) -> None:
    v = _row(bench)
    local = versions.version_json(v)
    remote = versions.version_json(versions.to_record(v))
    assert remote.pop("source") == "replica"
    assert set(local) == set(remote)
    for key in ("versionId", "prompt", "status", "pinned", "buildDurationMs", "createdAt", "updatedAt"):
        assert local[key] == remote[key], key
    assert local["createdAt"].endswith("Z")


def test_confirm_artifact_updates_and_replicates_in_the_callers_transaction(bench: Bench) -> None:
    v = _row(bench)
    added: list[tuple[str, str, dict[str, object]]] = []

    class Writer:
        def add(self, conn: object, destination: str, key: str, payload: dict[str, object]) -> None:
            added.append((destination, key, payload))

    conn = sqlite3.connect(str(bench.rt.layout.data_dir / "state.db"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    versions.confirm_artifact(conn, Writer(), v.version_id, "s3://bucket/u/p/snapshots/x.zip")
    conn.execute("COMMIT")
    conn.close()
    row = ProjectVersion.get_by_id(v.version_id)
    assert row.artifact_url == "s3://bucket/u/p/snapshots/x.zip" and row.row_version == v.row_version + 1
    [(dest, key, rec)] = added
    assert (dest, key) == ("replica", v.version_id)
    assert rec == versions.to_record(row)


def test_go_live_pushes_old_live_on_undo_and_forget_drops_deleted_versions(bench: Bench) -> None:
    ids = []
    for _ in range(3):
        v = versions.create(bench.rt.outbox, user_id="u", project_id="p", prompt="x", kind="new",
                            status="deploying", preview_url="http://x/")
        make_live(bench.rt, v.version_id)
        ids.append(v.version_id)
    assert versions.navigation("u", "p") == {"liveVersionId": ids[2], "undo": [ids[1], ids[0]], "redo": []}
    with database.atomic():
        versions.forget(ProjectVersion.get_by_id(ids[1]))
    assert versions.navigation("u", "p")["undo"] == [ids[0]]
    pointer = json.loads(bench.rt.kv.get("u:p") or b"{}")
    assert pointer["latestVersionId"] == ids[2]
