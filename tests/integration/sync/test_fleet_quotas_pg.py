"""Fleet-wide quotas on a real Postgres (issue 29): droplets admitting one user at once admit exactly what the
plan has left, admission fails closed (503) when Postgres is down unless told to fail open, and the reserved meter
row stays the one the droplet closes and exports."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql

from daemon.cli.serve import Daemon
from daemon.core import quotas, versions
from daemon.core.config import PlanConfig
from daemon.core.errors import QuotaExceeded
from daemon.fleet.ledger import FleetLedger
from daemon.intake import submit
from daemon.ops import replication
from daemon.ops import usage as usage_view
from sync.replica.usage import PostgresUsage
from tests.integration.sync.support import PG_DSN, TcpProxy, proxied_dsn
from tests.support import in_process_daemon


def fleet_config(schema: str, bucket: str, moto: str, droplet: str, extra: str = "") -> str:
    """A fleet droplet's config: plans, Postgres, the moto bucket (and any `extra` sections)."""
    return f'''
[quotas]
default_plan = "free"
[plans.free]
builds = 3
[rate_limits]
new_projects_per_user_per_hour = 500
[fleet]
enabled = true
droplet_id = "{droplet}"
lease_ttl_s = 60
release_idle_s = 0
warm_start = false
[replica]
backend = "postgres"
schema = "{schema}"
[objects]
backend = "s3"
bucket = "{bucket}"
endpoint_url = "{moto}"
region = "us-east-1"
{extra}'''


S3_ENV = {"PREVIEWD_S3_ACCESS_KEY_ID": "testing", "PREVIEWD_S3_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def bucket_name(moto_endpoint: str) -> str:
    """A fresh bucket in the session's moto server."""
    name = f"fq-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=name)
    return name


def meters(schema: str, user: str) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_DSN) as conn:
        return conn.execute(sql.SQL("SELECT version_id, finished, row_version FROM {}.previewd_build_usage "
                                    "WHERE user_id = %s ORDER BY version_id").format(sql.Identifier(schema)),
                            (user,)).fetchall()


def test_fifty_concurrent_admissions_on_three_droplets_admit_exactly_what_is_left(pg_schema: str) -> None:
    # Three droplets' ledgers, each on its own Postgres connection; the user has 2 of 20 builds this month.
    stores = [PostgresUsage(PG_DSN, schema=pg_schema) for _ in range(3)]
    ledgers = [FleetLedger(s) for s in stores]
    plan = PlanConfig(builds=20)
    month = quotas.current_month()

    def meter(vid: str) -> dict[str, object]:
        return quotas.opening_record(vid, "u1", f"p-{vid}", "new", None, "free")

    for i in range(2):
        ledgers[0].check(None, "free", plan, meter(f"OLD{i}"), counts_pages=False)  # type: ignore[arg-type]
    admitted: list[str] = []
    refused: list[dict[str, object]] = []
    start = threading.Barrier(50)

    def one(i: int) -> None:
        start.wait()
        try:
            ledgers[i % 3].check(None, "free", plan, meter(f"V{i:02d}"), counts_pages=False)  # type: ignore[arg-type]
            admitted.append(f"V{i:02d}")
        except QuotaExceeded as exc:
            refused.append(exc.extra)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(admitted) == 18 and len(refused) == 32
        assert {(r["quota"], r["used"], r["limit"]) for r in refused} == {("builds", 20, 20)}
        assert sorted(str(r[0]) for r in meters(pg_schema, "u1")) == sorted(["OLD0", "OLD1", *admitted])
        assert {r["user_id"]: r["builds"] for r in stores[1].month_totals(month)} == {"u1": 20}
    finally:
        for s in stores:
            s.close()


@pytest.fixture
def pg_proxy_dsn() -> Iterator[tuple[TcpProxy, str]]:
    proxy = TcpProxy(("127.0.0.1", int(psycopg.conninfo.conninfo_to_dict(PG_DSN).get("port") or 5432)))
    yield proxy, proxied_dsn(proxy)
    proxy.close()


def test_a_fleet_admission_reserves_in_postgres_and_fails_closed_when_it_is_down(
        tmp_path: Path, pg_schema: str, bucket_name: str, moto_endpoint: str,
        pg_proxy_dsn: tuple[TcpProxy, str]) -> None:
    proxy, dsn = pg_proxy_dsn
    with in_process_daemon(tmp_path, fleet_config(pg_schema, bucket_name, moto_endpoint, "drop-a"),
                           env={"PREVIEWD_PG_DSN": dsn, **S3_ENV}) as d:
        _fleet_admission(d, pg_schema, proxy)


def _fleet_admission(d: Daemon, schema: str, proxy: TcpProxy) -> None:
    from litestar.testing import TestClient

    from tests.support import ApiClient

    rt = d.rt
    v = submit.submit_new(rt, d.queue, submit.BuildRequest("u1", "p1", "x"))
    # reserved in Postgres by the admission itself, before any sync: the row the outbox later sends is the same
    assert meters(schema, "u1") == [(v.version_id, False, 1)]
    quotas.add_cpu(v.version_id, 1.25)
    versions.update(rt.outbox, v.version_id, status="failed", failure_reason="build_failed")
    assert replication.flush(rt.sync_loop)["errors"] == {}
    assert meters(schema, "u1") == [(v.version_id, True, 2)]
    fleet_view = {r["user_id"]: r for r in rt.usage_store.month_totals(quotas.current_month())}  # type: ignore[union-attr]
    export = {r["user_id"]: r for r in usage_view.export_rows(rt.cfg)}
    assert (fleet_view["u1"]["builds"], fleet_view["u1"]["cpu_seconds"]) == (1, 1.25)
    assert (export["u1"]["builds"], export["u1"]["build_cpu_seconds"]) == (1, 1.25)

    # Postgres down: the lease is held (no round trip), the quota cannot be asked -> 503, nothing written
    proxy.down()
    with TestClient(d.app) as tc:
        api = ApiClient(tc)
        r = api.post("/build-preview-for-new-project", {"userId": "u1", "projectId": "p1", "prompt": "again"},
                     params={"wait": "false"})
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "quota_unavailable" and "Postgres is unreachable" in err["message"]
        assert r.headers["retry-after"] == "5"
        assert [x.version_id for x in versions.history("u1", "p1")] == [v.version_id]
        # configured to fail open: this droplet's own meter decides (1 of 3 used here: admitted)
        rt.ledger.fail_open = True  # type: ignore[attr-defined]
        r = api.post("/build-preview-for-new-project", {"userId": "u1", "projectId": "p1", "prompt": "again"},
                     params={"wait": "false"})
        assert r.status_code == 202, r.text
        assert rt.ledger.fallbacks == 1  # type: ignore[attr-defined]
    proxy.restore()
