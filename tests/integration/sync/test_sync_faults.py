"""Fault tests through the whole path (local transaction -> outbox -> drain -> real remote), nothing lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sync.cloudflare.kv import CloudflareKV
from sync.handlers import kv_handler, objects_handler, replica_handler
from sync.kv import encode_pointer, pointer_key
from sync.loop import SyncLoop
from sync.objects import S3ObjectStore
from sync.outbox import Outbox, OutboxItem
from sync.replica import PostgresReplica
from tests.fakes.cf_kv_server import CloudflareKVServer
from tests.integration.sync.records import lifecycle, record
from tests.integration.sync.support import (
    PG_DSN,
    FaultyHttpProxy,
    ManualClock,
    TcpProxy,
    proxied_dsn,
    s3_admin,
    sqlite_connect,
)
from tests.support import wait_until


def make_outbox(tmp_path: Path, **kw: Any) -> Outbox:
    """The daemon's state.db stand-in: a versions table and the outbox, in one file."""
    connect = sqlite_connect(tmp_path / "state.db")
    conn = connect()
    conn.execute("CREATE TABLE IF NOT EXISTS versions (version_id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    Outbox.ensure_schema(conn)
    conn.close()
    return Outbox(connect, base_backoff_s=0.05, max_backoff_s=0.2, **kw)


def commit_change(outbox: Outbox, rec: dict[str, Any]) -> None:
    """What the daemon does on every row change: the row and its outbox entry in one transaction."""
    conn = outbox._connect()
    try:
        with conn:
            conn.execute(
                "INSERT INTO versions (version_id, body) VALUES (?, ?) "
                "ON CONFLICT(version_id) DO UPDATE SET body = excluded.body",
                (rec["version_id"], json.dumps(rec)),
            )
            outbox.add(conn, "replica", rec["version_id"], rec)
    finally:
        conn.close()


def local_rows(outbox: Outbox) -> list[dict[str, Any]]:
    conn = outbox._connect()
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT body FROM versions ORDER BY version_id")]
    finally:
        conn.close()


def test_postgres_outage_during_20_builds_loses_nothing(tmp_path: Path, pg_schema: str, pg_proxy: TcpProxy) -> None:
    outbox = make_outbox(tmp_path)
    replica = PostgresReplica(proxied_dsn(pg_proxy), schema=pg_schema, connect_timeout_s=2)
    replica.ensure_schema()
    handlers = {"replica": replica_handler(replica)}
    pg_proxy.down()
    steps = [lifecycle(n) for n in range(20)]
    for stage in range(4):  # the 20 builds advance together, draining (and failing) between stages
        for n in range(20):
            commit_change(outbox, steps[n][stage])
        stats = outbox.drain(handlers, force=True)
        assert stats.total_sent == 0 and "replica" in stats.errors
    backlog = outbox.backlog()["replica"]
    assert backlog["pending"] == 80 and backlog["attempts"] == 4
    assert "remote_unavailable" in backlog["last_error"]
    pg_proxy.restore()
    loop = SyncLoop(outbox, handlers, interval_s=0.05)
    stats = loop.flush(timeout_s=30)
    assert stats.errors == {} and stats.sent == {"replica": 80}
    assert outbox.pending() == 0 and outbox.backlog()["replica"]["last_error"] is None
    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            f"SELECT version_id, count(*) OVER (PARTITION BY version_id), status::text, row_version "
            f"FROM {pg_schema}.project_versions ORDER BY version_id"
        ).fetchall()
    assert len(rows) == 20
    assert all(r[1] == 1 for r in rows)
    assert [(r[0], r[2], r[3]) for r in rows] == [
        (s[-1]["version_id"], s[-1]["status"], 4) for s in sorted(steps, key=lambda s: s[0]["version_id"])
    ]
    assert [r for r in replica.fetch_versions("u1", "p1")] == local_rows(outbox)


def test_stale_update_arriving_late_through_the_outbox(tmp_path: Path, pg_schema: str) -> None:
    outbox = make_outbox(tmp_path)
    replica = PostgresReplica(PG_DSN, schema=pg_schema)
    handlers = {"replica": replica_handler(replica)}
    final, stale = record(1, "deployed", 4, preview_url="https://p/"), record(1, "building", 2)
    commit_change(outbox, final)
    outbox.drain(handlers)
    conn = outbox._connect()
    with conn:  # e.g. an older entry re-queued by another droplet, or a replayed backup
        outbox.add(conn, "replica", stale["version_id"], stale)
    conn.close()
    outbox.drain(handlers)
    got = replica.get_version(final["version_id"])
    assert got is not None and got["status"] == "deployed" and got["row_version"] == 4


def test_kv_429_then_200_through_the_loop(tmp_path: Path, kv_server: CloudflareKVServer) -> None:
    outbox = make_outbox(tmp_path)
    kv = CloudflareKV(kv_server.account_id, kv_server.namespace_id, kv_server.token, base_url=kv_server.base_url)
    handlers = {"kv": kv_handler(kv)}
    key = pointer_key("u1", "p1")
    kv.put(key, encode_pointer("v0", "http://v0/", 1), ttl_seconds=3600)  # a write just now: the next one is 429
    conn = outbox._connect()
    with conn:
        for i in range(1, 6):  # five pointer moves in quick succession: only the newest must be written
            value = encode_pointer(f"v{i}", f"http://v{i}/", i).decode()
            outbox.add(conn, "kv", key, {"key": key, "value": value, "ttl": 7776000})
    conn.close()
    loop = SyncLoop(outbox, handlers, interval_s=0.05)
    stats = loop.flush(timeout_s=30)
    assert stats.sent == {"kv": 5} and outbox.pending() == 0
    assert json.loads(kv_server.live_value(key) or b"{}")["latestVersionId"] == "v5"
    puts = [(k, s) for (m, k, s) in kv_server.requests if m == "PUT"]
    assert (key, 429) in puts and puts[-1] == (key, 200)
    assert [json.loads(v)["latestVersionId"] for (k, v) in kv_server.writes] == ["v0", "v5"]  # coalesced


def test_kv_429_beyond_client_retries_backs_off_in_the_outbox(
    tmp_path: Path, kv_server: CloudflareKVServer, clock: ManualClock
) -> None:
    outbox = make_outbox(tmp_path, clock=clock)
    kv = CloudflareKV(
        kv_server.account_id, kv_server.namespace_id, kv_server.token, base_url=kv_server.base_url, max_retries=0
    )
    kv.put("k", b"old")
    conn = outbox._connect()
    with conn:
        outbox.add(conn, "kv", "k", {"key": "k", "value": "new", "ttl": None})
    conn.close()
    stats = outbox.drain({"kv": kv_handler(kv)})
    assert "rate_limited" in stats.errors["kv"]
    backlog = outbox.backlog()["kv"]
    assert backlog["pending"] == 1 and backlog["next_attempt_in_s"] >= 1.0  # Retry-After honoured
    assert outbox.drain({"kv": kv_handler(kv)}).deferred == ["kv"]
    clock.advance(backlog["next_attempt_in_s"])

    def retry() -> bool:
        clock.advance(2)  # the outbox's clock; the server's one-second window runs on real time
        return outbox.drain({"kv": kv_handler(kv)}).sent == {"kv": 1}

    wait_until(retry, what="the kv retry")
    assert kv_server.live_value("k") == b"new"


def test_s3_500s_for_a_while_lose_nothing(
    tmp_path: Path, bucket: str, moto_endpoint: str, s3_fault_proxy: FaultyHttpProxy
) -> None:
    confirmed: list[tuple[str, str]] = []

    def on_done(conn: sqlite3.Connection, dest: str, items: list[OutboxItem]) -> None:
        confirmed.extend((dest, i.payload["version_id"]) for i in items)

    outbox = make_outbox(tmp_path, on_done=on_done)
    store = S3ObjectStore(bucket, endpoint_url=s3_fault_proxy.endpoint, access_key="t", secret_key="t", max_attempts=2)
    files = {}
    conn = outbox._connect()
    with conn:
        for n in range(6):
            path = tmp_path / "artifacts" / f"{n}.zip"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(os.urandom(1000 + n))
            key = f"u1/p1/snapshots/{record(n)['version_id']}.zip"
            files[key] = path.read_bytes()
            payload = {"key": key, "path": str(path), "content_type": "application/zip", "version_id": f"v{n}"}
            outbox.add(conn, "objects", key, payload)
    conn.close()
    handlers = {"objects": objects_handler(store)}
    s3_fault_proxy.fail_next(10**9)  # every request answers 500 ...
    for _ in range(3):
        stats = outbox.drain(handlers, force=True)
        assert "InternalError" in stats.errors["objects"]
    assert s3_fault_proxy.failed >= 3 and outbox.pending("objects") == 6 and confirmed == []
    s3_fault_proxy.fail_next(0)  # ... until the outage ends
    stats = SyncLoop(outbox, handlers).flush(timeout_s=30)
    assert stats.errors == {} and outbox.pending() == 0
    admin = s3_admin(moto_endpoint)
    for key, data in files.items():
        assert admin.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert sorted(confirmed) == [("objects", f"v{n}") for n in range(6)]


CHILD = textwrap.dedent(
    """
    import sqlite3, sys, time
    from sync.handlers import replica_handler
    from sync.outbox import Outbox
    from sync.replica import PostgresReplica

    db, dsn, schema, marker = sys.argv[1:]
    def connect():
        conn = sqlite3.connect(db, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn
    inner = replica_handler(PostgresReplica(dsn, schema=schema))
    batches = []
    def handler(items):
        batches.append(len(items))
        if len(batches) == 2:  # second batch: half goes out and commits in Postgres, then we are killed
            inner(items[: len(items) // 2])
            open(marker, "w").write(str(len(items)))
            time.sleep(120)
        inner(items)
    Outbox(connect).drain({"replica": handler}, max_batch=50)
    """
)


def test_sigkill_mid_batch_resumes_without_loss_or_duplicates(tmp_path: Path, pg_schema: str) -> None:
    outbox = make_outbox(tmp_path)
    for n in range(120):
        commit_change(outbox, record(n, "deployed", 3, preview_url=f"http://d{n}/"))
    PostgresReplica(PG_DSN, schema=pg_schema).ensure_schema()
    marker = tmp_path / "mid-batch"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "state.db"), PG_DSN, pg_schema, str(marker)])
    try:
        wait_until(lambda: marker.exists() or child.poll() is not None, timeout=60, what="the child mid-batch")
        assert child.poll() is None, "the child finished instead of pausing mid-batch"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert outbox.pending() == 70  # batch 1 confirmed and deleted; batch 2 half-sent but still queued
    with psycopg.connect(PG_DSN) as conn:
        assert conn.execute(f"SELECT count(*) FROM {pg_schema}.project_versions").fetchone() == (75,)
    conn2 = outbox._connect()
    assert conn2.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn2.close()
    resent: list[int] = []
    inner = replica_handler(PostgresReplica(PG_DSN, schema=pg_schema))

    def counting(items: list[OutboxItem]) -> None:
        resent.extend(i.id for i in items)
        inner(items)

    stats = outbox.drain({"replica": counting})
    assert stats.sent == {"replica": 70} and outbox.pending() == 0
    assert len(resent) == len(set(resent)) == 70  # each left-over item sent once; only the killed batch again
    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            f"SELECT version_id, status::text, row_version FROM {pg_schema}.project_versions ORDER BY version_id"
        ).fetchall()
    assert rows == [(record(n)["version_id"], "deployed", 3) for n in range(120)]


@pytest.mark.parametrize("bad", [{"status": "exploded"}, {"row_version": None}])
def test_a_poison_record_is_parked_and_the_rest_flows(tmp_path: Path, pg_schema: str, bad: dict[str, Any]) -> None:
    outbox = make_outbox(tmp_path)
    replica = PostgresReplica(PG_DSN, schema=pg_schema)
    commit_change(outbox, record(1))
    commit_change(outbox, {**record(2), **bad})
    commit_change(outbox, record(3))
    stats = outbox.drain({"replica": replica_handler(replica)})
    assert stats.sent == {"replica": 2} and stats.dead == {"replica": 1}
    assert [r["version_id"] for r in replica.fetch_versions("u1", "p1")] == [
        record(1)["version_id"],
        record(3)["version_id"],
    ]
    dead = outbox.dead_items()
    assert len(dead) == 1 and dead[0][0].key == record(2)["version_id"] and "invalid_record" in dead[0][1]
    assert outbox.backlog()["replica"]["dead"] == 1
