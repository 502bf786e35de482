"""Benchmark: admission time added by fleet-wide quotas (issue 29; goal p50 <= 5 ms added over local quotas).

Usage: .venv/bin/python bench/fleet_quotas.py [--requests 300] [--history 500] [--users 200]

One in-process daemon with the version replica on the local Postgres (schema `bench_fq_<random>`, dropped at the
end) admits new builds through `submit.admission(...).create(...)`: the disk reserve, the plan lookup, the
IMMEDIATE transaction with the rate cap, the quota check, the version row and its meter row. Two modes are
interleaved build by build in the same run, on the same databases:
  local  the single droplet's ledger: the month summed from `state.db` inside the transaction
  fleet  the fleet's ledger (daemon/fleet/ledger.py): one Postgres transaction under the user's month lock
         counting the month and inserting the meter row (its own connection, as a droplet has)
Both sides hold the same month: --users other users with 20 builds each and the benched user with --history
builds (Postgres and state.db alike). Admitted builds are failed untimed so the user never has many in flight.
Prints p50/p90 per mode, the added p50 and the ratio fleet/local; no assertion on timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from daemon.core import quotas, versions  # noqa: E402
from daemon.core.db import database, utcnow  # noqa: E402
from daemon.fleet.ledger import FleetLedger, LocalLedger  # noqa: E402
from daemon.intake import submit  # noqa: E402
from sync.replica.usage import PostgresUsage  # noqa: E402
from tests.support import in_process_daemon  # noqa: E402

DSN = os.environ.get("PREVIEWD_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BIG = 10**9


def config(schema: str) -> str:
    return f"""
[rate_limits]
new_projects_per_user_per_hour = {BIG}
[quotas]
default_plan = "pro"
[plans.pro]
builds = {BIG}
build_cpu_seconds = {BIG}
pages_deployments = {BIG}
concurrent_projects = 1000
[replica]
backend = "postgres"
schema = "{schema}"
"""


def seed(store: PostgresUsage, schema: str, users: int, history: int) -> None:
    """The same month in state.db and in Postgres."""
    month, now = quotas.current_month(), utcnow()
    rows = [(f"seed{u:05d}{i:03d}".ljust(26, "0"), f"user{u}", f"p{i}") for u in range(users) for i in range(20)]
    rows += [(f"mine{i:05d}".ljust(26, "0"), "u0", f"h{i}") for i in range(history)]
    with database.atomic():
        database.execute_sql("SELECT 1")
        database.connection().executemany(
            "INSERT INTO build_usage (version_id, user_id, project_id, month, plan, kind, cpu_seconds, stored_bytes, "
            "pages_deployment, finished, created_at, row_version) VALUES (?, ?, ?, ?, 'pro', 'new', 1.5, 1000, 0, 1, "
            "?, 1)", [(*r, month, now) for r in rows])
    recs = [{**quotas.opening_record(vid, user, proj, "new", None, "pro"), "finished": True, "cpu_seconds": 1.5}
            for vid, user, proj in rows]
    store.upsert("build_usage", recs)
    # what autovacuum does to a table of that age: planner statistics and the visibility map (index-only scans)
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}.previewd_build_usage").format(sql.Identifier(schema)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="admissions per mode")
    ap.add_argument("--history", type=int, default=500, help="builds the benched user has this month")
    ap.add_argument("--users", type=int, default=200, help="other users with 20 builds each")
    args = ap.parse_args()
    schema = f"bench_fq_{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                in_process_daemon(Path(tmp), config(schema), env={"PREVIEWD_PG_DSN": DSN},
                                  render={"enabled": False}) as d:
            rt = d.rt
            fleet_store = PostgresUsage(DSN, schema=schema)
            fleet_store.ensure_schema()
            seed(fleet_store, schema, args.users, args.history)
            ledgers = {"local": LocalLedger(), "fleet": FleetLedger(fleet_store)}
            times: dict[str, list[float]] = {m: [] for m in ledgers}
            for i in range(args.requests * 2 + 20):
                mode = ("local", "fleet")[i % 2]
                rt.ledger = ledgers[mode]
                adm = submit.admission(rt, "u0", f"b{i}", "new")
                t0 = time.perf_counter()
                v = adm.create(prompt="bench")
                took = time.perf_counter() - t0
                if i >= 20:  # warm-up: connections, statement caches
                    times[mode].append(took * 1000)
                versions.update(None, v.version_id, status="failed", failure_reason="build_failed")
            fleet_store.close()
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    def pct(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=100)[int(q) - 1]

    print(f"admission of a new build, {args.requests} per mode, user with {args.history} builds this month, "
          f"{args.users} other users (ms):")
    for mode, xs in times.items():
        print(f"  {mode:5s}  p50 {statistics.median(xs):7.2f}  p90 {pct(xs, 90):7.2f}")
    local, fleet = statistics.median(times["local"]), statistics.median(times["fleet"])
    paired = statistics.median(f - loc for loc, f in zip(times["local"], times["fleet"], strict=False))
    print(f"fleet vs local: p50 +{fleet - local:.2f} ms (x{fleet / local:.2f}; paired by round +{paired:.2f} ms; "
          f"goal <= 5 ms added)")


if __name__ == "__main__":
    main()
