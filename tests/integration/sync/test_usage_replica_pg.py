"""Plans and usage meters replicated to a real Postgres (issue 19): through the outbox like versions, each build
counted once however often it is re-sent, and two droplets' builds summed in one place (the fleet's view)."""

from __future__ import annotations

from pathlib import Path

from daemon.cli.serve import Daemon
from daemon.core import quotas, versions
from daemon.ops import replication
from sync.handlers import usage_handler
from sync.outbox import OutboxItem
from sync.replica.usage import PostgresUsage
from tests.integration.sync.support import PG_DSN
from tests.support import make_config

PLANS = '[quotas]\ndefault_plan = "free"\n[plans.free]\nbuilds = 10\n[plans.pro]\nbuilds = 100\n' \
        '[rate_limits]\nnew_projects_per_user_per_hour = 50\n'


def droplet(root: Path, schema: str) -> Daemon:
    root.mkdir(parents=True, exist_ok=True)
    text = PLANS + f'[replica]\nbackend = "postgres"\nschema = "{schema}"\n'
    return Daemon(make_config(root, text, env={"PREVIEWD_PG_DSN": PG_DSN}, render={"enabled": False}))


def build(d: Daemon, user: str, project: str, cpu: float) -> str:
    from daemon.intake import submit

    req = submit.BuildRequest(user, project, "x")
    v = submit.submit_new(d.rt, d.queue, req)
    quotas.add_cpu(v.version_id, cpu)
    versions.update(d.rt.outbox, v.version_id, status="failed", failure_reason="build_failed")
    return v.version_id


def test_meters_and_plans_reach_postgres_once_and_sum_across_droplets(tmp_path: Path, pg_schema: str) -> None:
    month = quotas.current_month()
    a = droplet(tmp_path / "a", pg_schema)
    try:
        quotas.assign(a.rt.cfg, a.rt.outbox, "user", "u1", "pro")
        ids = [build(a, "u1", f"p{i}", 1.5) for i in range(3)]
        assert replication.flush(a.rt.sync_loop)["errors"] == {}
        store = PostgresUsage(PG_DSN, schema=pg_schema)
        assert store.plan_of("user:u1") == "pro"
        totals = {r["user_id"]: r for r in store.month_totals(month)}
        assert (totals["u1"]["builds"], totals["u1"]["cpu_seconds"]) == (3, 4.5)
        # a batch sent again (a crash before the outbox row was deleted) changes nothing
        rec = quotas.meter_record(quotas.BuildUsage.get_by_id(ids[0]))
        usage_handler(store)([OutboxItem(1, "usage", "k", {"table": "build_usage", "record": rec}, 0.0, 0)])
        assert store.month_totals(month)[0]["builds"] == 3
    finally:
        a.close()
    b = droplet(tmp_path / "b", pg_schema)  # a second droplet, its own state.db, the same Postgres
    try:
        build(b, "u1", "other", 2.0)
        build(b, "u2", "q", 0.5)
        assert replication.flush(b.rt.sync_loop)["errors"] == {}
        totals = {r["user_id"]: r for r in store.month_totals(month)}
        assert (totals["u1"]["builds"], totals["u1"]["cpu_seconds"]) == (4, 6.5)
        assert (totals["u2"]["builds"], totals["u2"]["cpu_seconds"]) == (1, 0.5)
    finally:
        b.close()
        store.close()
