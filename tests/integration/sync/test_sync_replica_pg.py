"""PostgresReplica against the real server: schema as the seed writes it, idempotent upserts, reconnects."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from sync.errors import ConfigError, InvalidRecord, RemoteError
from sync.replica import RECORD_FIELDS, PostgresReplica
from tests.integration.sync.records import record
from tests.integration.sync.support import PG_DSN, TcpProxy, proxied_dsn
from tests.support import free_port


def pg(query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(PG_DSN) as conn:
        return conn.execute(query, params).fetchall()


def test_schema_matches_the_seed(pg_schema: str) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rep.ensure_schema()
    cols = dict(
        pg(
            "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'project_versions'",
            (pg_schema,),
        )
    )
    assert set(cols) == {"id", "epoch", *RECORD_FIELDS}  # epoch: a fleet's fencing (sync/lease.py)
    assert cols["id"] == "uuid" and cols["claude_json"] == "jsonb" and cols["created_at"] == "timestamptz"
    assert cols["status"] == "project_versions_status" and cols["row_version"] == "int8"
    labels = [r[0] for r in pg("SELECT unnest(enum_range(NULL::" + pg_schema + ".project_versions_status))::text")]
    assert labels == ["queued", "building", "deploying", "deployed", "failed"]
    indexes = [
        r[0] for r in pg("SELECT indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY indexname", (pg_schema,))
    ]
    joined = "\n".join(indexes)
    assert "(user_id, project_id)" in joined
    assert "(project_id, version_id)" in joined
    assert "(user_id, project_id, created_at DESC)" in joined
    assert "UNIQUE INDEX" in joined and "(version_id)" in joined
    default = pg(
        "SELECT column_default FROM information_schema.columns WHERE table_schema = %s AND column_name = 'created_at'",
        (pg_schema,),
    )[0][0]
    assert default == "now()"
    rep.close()


def test_migrations_are_idempotent_and_recorded_once(pg_schema: str) -> None:
    a = PostgresReplica(PG_DSN, schema=pg_schema)
    b = PostgresReplica(PG_DSN, schema=pg_schema)
    a.ensure_schema()
    b.ensure_schema()
    a.ensure_schema()
    names = [r[0] for r in pg(f"SELECT name FROM {pg_schema}.schema_migrations ORDER BY name")]
    assert names == ["project_versions/0001_create_project_versions", "project_versions/0002_daemon_columns",
                     "project_versions/0003_checks_and_timings", "project_versions/0004_fleet_leases",
                     "project_versions/0005_target_package", "project_versions/0006_preview_deleted_at",
                     "project_versions/0007_repair", "project_versions/0008_fleet_quotas_alias"]
    a.close()
    b.close()


def test_two_tables_side_by_side(pg_schema: str) -> None:
    a = PostgresReplica(PG_DSN, schema=pg_schema)
    b = PostgresReplica(PG_DSN, schema=pg_schema, table="versions_b")
    a.upsert_versions([record(1)])
    b.upsert_versions([record(2)])
    assert [r["version_id"] for r in a.fetch_versions("u1", "p1")] == [record(1)["version_id"]]
    assert [r["version_id"] for r in b.fetch_versions("u1", "p1")] == [record(2)["version_id"]]


def test_upsert_roundtrip_every_field(pg_schema: str) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rec = record(
        3,
        "deployed",
        7,
        claude_json={"result": "ok", "nested": [1, 2, {"x": None}]},
        preview_url="https://p.example/",
        artifact_url="s3://b/u1/p1/snapshots/x.zip",
        build_duration_ms=1234,
        output_size_bytes=99,
        pinned=True,
        needs_rebuild=True,
        archived_at="2026-02-01T00:00:00Z",
    )
    rep.upsert_versions([rec])
    got = rep.get_version(rec["version_id"])
    assert got is not None
    assert got == {**rec, "archived_at": "2026-02-01T00:00:00+00:00"}
    assert rep.get_version("missing") is None
    rep.close()


def test_stale_update_never_regresses_a_row(pg_schema: str) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rep.upsert_versions([record(1, "deployed", 4, preview_url="https://final/")])
    rep.upsert_versions([record(1, "building", 2)])  # arrives late from a slow retry
    rep.upsert_versions([record(1, "failed", 4, failure_reason="x")])  # equal row_version: not newer
    got = rep.get_version(record(1)["version_id"])
    assert got is not None and got["status"] == "deployed" and got["row_version"] == 4
    assert got["preview_url"] == "https://final/"
    rep.upsert_versions([record(1, "failed", 5, failure_reason="deploy_failed")])
    got = rep.get_version(record(1)["version_id"])
    assert got is not None and got["status"] == "failed" and got["failure_reason"] == "deploy_failed"


def test_retention_tombstone_roundtrips_and_is_asked_by_id(pg_schema: str) -> None:
    """Issue 24: the retention's tombstone reaches Postgres with its row, and a droplet asks which of the previews
    it holds carry one."""
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rep.upsert_versions([record(1, "deployed", 2), record(2, "deployed", 3, preview_deleted_at="2026-05-01T00:00:00Z"),
                         record(3, "deployed", 2)])
    ids = [record(n)["version_id"] for n in (1, 2, 3)]
    assert rep.deleted_previews([*ids, "never-existed"]) == [ids[1]]
    assert rep.deleted_previews([]) == []
    got = rep.get_version(ids[1])
    assert got is not None and got["preview_deleted_at"] == "2026-05-01T00:00:00+00:00"
    rep.upsert_versions([record(3, "deployed", 3, preview_deleted_at="2026-05-02T00:00:00Z")])
    assert rep.deleted_previews(ids) == [ids[1], ids[2]]
    rep.close()


def test_delete_and_fetch_order(pg_schema: str) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rep.upsert_versions([record(3), record(1), record(2), record(9, user_id="u2")])
    assert [r["version_id"] for r in rep.fetch_versions("u1", "p1")] == [record(n)["version_id"] for n in (1, 2, 3)]
    rep.delete_versions([record(2)["version_id"], "never-existed"])
    assert [r["version_id"] for r in rep.fetch_versions("u1", "p1")] == [record(n)["version_id"] for n in (1, 3)]
    assert len(rep.all_versions()) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"row_version": "3"},
        {"created_at": "yesterday"},
        {"claude_json": "not a dict"},
        {"pinned": 1},
        {"user_id": ""},
        {"extra_field": 1},
    ],
)
def test_bad_records_are_refused_before_any_write(pg_schema: str, change: dict[str, Any]) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rep.ensure_schema()
    with pytest.raises(InvalidRecord):
        rep.upsert_versions([record(1), {**record(2), **change}])
    assert rep.fetch_versions("u1", "p1") == []


def test_missing_field_is_refused(pg_schema: str) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    rec = record(1)
    del rec["pinned"]
    with pytest.raises(InvalidRecord, match="pinned"):
        rep.upsert_versions([rec])


def test_bad_identifiers_are_refused() -> None:
    with pytest.raises(ConfigError):
        PostgresReplica(PG_DSN, table="x; drop table y")
    with pytest.raises(ConfigError):
        PostgresReplica("")


def test_unreachable_server_is_a_retryable_error() -> None:
    rep = PostgresReplica(f"postgresql://postgres@127.0.0.1:{free_port()}/test", connect_timeout_s=2)
    with pytest.raises(RemoteError) as info:
        rep.upsert_versions([record(1)])
    assert info.value.retryable


def test_reconnects_after_the_server_drops(pg_schema: str, pg_proxy: TcpProxy) -> None:
    rep = PostgresReplica(proxied_dsn(pg_proxy), schema=pg_schema, connect_timeout_s=2)
    rep.upsert_versions([record(1)])
    pg_proxy.down()  # cuts the live connection and refuses new ones
    with pytest.raises(RemoteError) as info:
        rep.upsert_versions([record(2)])
    assert info.value.retryable
    pg_proxy.restore()
    rep.upsert_versions([record(2)])  # no explicit reconnect: the replica does it
    assert len(rep.fetch_versions("u1", "p1")) == 2
    # A drop the replica has not noticed yet (idle connection cut) is healed on the next call too.
    pg_proxy.down()
    pg_proxy.restore()
    rep.upsert_versions([record(3)])
    assert len(rep.fetch_versions("u1", "p1")) == 3
    rep.close()
