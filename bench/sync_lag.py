"""Benchmark: commit-to-Postgres lag (p95, target <= 1 s) and catch-up of 1,000 rows after an outage (<= 5 s).

Run: .venv/bin/python bench/sync_lag.py [--dsn DSN] [--changes 300] [--backlog 1000] [--pgbench-seconds 5]
DSN defaults to $PREVIEWD_TEST_PG_DSN or postgresql://postgres@127.0.0.1:5432/test. Everything runs in a
scratch schema (and pgbench in a scratch database) that is dropped at the end. The machine's own
``pgbench -S`` throughput is printed beside the figures for scale.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from psycopg import conninfo, sql

from sync.handlers import replica_handler
from sync.loop import SyncLoop
from sync.outbox import Outbox, OutboxItem
from sync.replica import PostgresReplica

DEFAULT_DSN = os.environ.get("PREVIEWD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def make_record(n: int, status: str, row_version: int) -> dict[str, Any]:
    """A version record with every field the daemon sends."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return {
        "version_id": f"01JB{n:022d}",
        "user_id": "bench",
        "project_id": f"p{n % 10}",
        "prompt": f"benchmark app {n}",
        "parent_version_id": None,
        "preview_url": f"http://d{n}.localhost/" if status == "deployed" else None,
        "artifact_url": None,
        "framework": "vite",
        "build_duration_ms": 1000 + n if status == "deployed" else None,
        "output_size_bytes": 4096 if status == "deployed" else None,
        "claude_json": {"result": "ok", "n": n} if status == "deployed" else None,
        "status": status,
        "needs_rebuild": False,
        "base_snapshot_id": None,
        "cf_deployment_id": None,
        "node_version": "20.11.0",
        "pnpm_version": "9.1.0",
        "created_at": now,
        "failure_reason": None,
        "pinned": False,
        "rollback_of": None,
        "archived_at": None,
        "updated_at": now,
        "row_version": row_version,
    }


def local_state(folder: Path) -> Outbox:
    """A state.db like the daemon's: a versions table and the outbox in one WAL file."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(str(folder / "state.db"), timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    conn = connect()
    conn.execute("CREATE TABLE IF NOT EXISTS versions (version_id TEXT PRIMARY KEY, status TEXT, rv INTEGER)")
    Outbox.ensure_schema(conn)
    conn.close()
    return Outbox(connect, base_backoff_s=0.5, max_backoff_s=5.0)


def commit_change(outbox: Outbox, conn: sqlite3.Connection, rec: dict[str, Any]) -> None:
    """The row change and its outbox entry in one local transaction."""
    with conn:
        conn.execute(
            "INSERT INTO versions VALUES (?, ?, ?) ON CONFLICT(version_id) DO UPDATE SET status = excluded.status, "
            "rv = excluded.rv",
            (rec["version_id"], rec["status"], rec["row_version"]),
        )
        outbox.add(conn, "replica", rec["version_id"], rec)


def measure_lag(dsn: str, schema: str, changes: int, gap_s: float) -> list[float]:
    """Commit ``changes`` row changes with the loop running; return per-change commit-to-Postgres lag (s)."""
    replica = PostgresReplica(dsn, schema=schema, table="lag_versions")
    replica.ensure_schema()
    inner = replica_handler(replica)
    committed: dict[int, float] = {}
    lags: list[float] = []
    done = threading.Event()

    def handler(items: list[OutboxItem]) -> None:
        inner(items)  # returns once Postgres committed the batch
        now = time.perf_counter()
        for item in items:
            for item_id in (item.id, *item.superseded):
                lags.append(now - committed[item_id])
        if len(lags) >= changes:
            done.set()

    with tempfile.TemporaryDirectory() as tmp:
        outbox = local_state(Path(tmp))
        loop = SyncLoop(outbox, {"replica": handler}, interval_s=2.0)
        loop.start()
        conn = outbox._connect()
        statuses = ("queued", "building", "deploying", "deployed")
        for i in range(changes):
            rec = make_record(i // 4, statuses[i % 4], i % 4 + 1)  # each version walks through its states
            with conn:
                conn.execute(
                    "INSERT INTO versions VALUES (?, ?, ?) ON CONFLICT(version_id) DO UPDATE SET "
                    "status = excluded.status, rv = excluded.rv",
                    (rec["version_id"], rec["status"], rec["row_version"]),
                )
                item_id = outbox.add(conn, "replica", rec["version_id"], rec)
                committed[item_id] = time.perf_counter()  # stamped before COMMIT: the lag includes it
            loop.nudge()
            time.sleep(gap_s)
        conn.close()
        done.wait(60)
        loop.stop()
    replica.close()
    return lags


def measure_catch_up(dsn: str, schema: str, backlog: int) -> tuple[float, int]:
    """Queue ``backlog`` rows while Postgres is unreachable, then time the flush once it is back."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    info = conninfo.conninfo_to_dict(dsn)
    info.update(host="127.0.0.1", port=str(dead_port), connect_timeout="1")
    unreachable = PostgresReplica(conninfo.make_conninfo("", **info), schema=schema, table="catchup_versions")
    replica = PostgresReplica(dsn, schema=schema, table="catchup_versions")
    replica.ensure_schema()
    with tempfile.TemporaryDirectory() as tmp:
        outbox = local_state(Path(tmp))
        conn = outbox._connect()
        for n in range(backlog):
            commit_change(outbox, conn, make_record(10_000 + n, "deployed", 4))
        conn.close()
        failed = outbox.drain({"replica": replica_handler(unreachable)}, force=True)  # the outage
        assert failed.total_sent == 0 and "replica" in failed.errors, failed
        start = time.perf_counter()
        stats = SyncLoop(outbox, {"replica": replica_handler(replica)}).flush(timeout_s=60)
        elapsed = time.perf_counter() - start
    with psycopg.connect(dsn) as pg:
        row = pg.execute(sql.SQL("SELECT count(*) FROM {}.catchup_versions").format(sql.Identifier(schema))).fetchone()
    arrived = int(row[0]) if row else 0
    assert stats.sent.get("replica") == backlog and arrived == backlog, (stats, arrived)
    replica.close()
    return elapsed, arrived


def pgbench_select_tps(dsn: str, seconds: int) -> float | None:
    """``pgbench -S`` (1 client) tps in a scratch database created and dropped here; None if unavailable."""
    name = f"bench_sync_pgb_{os.getpid()}"
    admin = psycopg.connect(dsn, autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        info = conninfo.conninfo_to_dict(dsn)
        info["dbname"] = name
        target = conninfo.make_conninfo("", **info)
        subprocess.run(["pgbench", "-i", "-s", "1", "-q", target], check=True, capture_output=True, timeout=120)
        out = subprocess.run(
            ["pgbench", "-S", "-c", "1", "-j", "1", "-T", str(seconds), target],
            check=True,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
        match = re.search(r"tps = ([0-9.]+)", out)
        return float(match.group(1)) if match else None
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"pgbench unavailable: {exc}", file=sys.stderr)
        return None
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


def main() -> None:
    """Run both measurements and print them with pgbench beside them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--changes", type=int, default=300, help="row changes for the lag measurement")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause between committed changes")
    parser.add_argument("--backlog", type=int, default=1000, help="rows pending when the outage ends")
    parser.add_argument("--pgbench-seconds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the simulated outage logs a warning per failed drain

    schema = f"bench_sync_{uuid.uuid4().hex[:10]}"
    try:
        lags = measure_lag(args.dsn, schema, args.changes, args.gap_ms / 1000)
        catch_up_s, rows = measure_catch_up(args.dsn, schema, args.backlog)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as pg:
            pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    tps = pgbench_select_tps(args.dsn, args.pgbench_seconds)

    lags.sort()
    p50 = statistics.median(lags)
    p95 = lags[max(0, int(len(lags) * 0.95) - 1)]
    print(
        f"commit->postgres lag  n={len(lags)}  p50={p50 * 1000:.1f} ms  p95={p95 * 1000:.1f} ms  "
        f"max={lags[-1] * 1000:.1f} ms  (target p95 <= 1000 ms: {'ok' if p95 <= 1.0 else 'MISSED'})"
    )
    print(
        f"catch-up              {rows} rows in {catch_up_s:.3f} s = {rows / catch_up_s:.0f} rows/s  "
        f"(target <= 5 s: {'ok' if catch_up_s <= 5.0 else 'MISSED'})"
    )
    if tps:
        print(f"pgbench -S (1 client) {tps:.0f} tps = {1000 / tps:.3f} ms per read-only transaction")
        print(
            f"ratios                lag p95 = {p95 * tps:.0f} pgbench transactions; "
            f"catch-up rate = {rows / catch_up_s / tps:.2f} x pgbench -S tps"
        )


if __name__ == "__main__":
    main()
