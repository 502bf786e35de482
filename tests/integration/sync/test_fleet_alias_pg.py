"""Replicated live alias state (issue 29): a Pages alias redeploy is recorded in Postgres under the lease epoch,
retried on a persisted schedule when it fails, counted in the export, deleted by cleanup; a droplet that takes the
project over never redeploys what the previous holder already did (the fake Pages API counts deployments)."""

from __future__ import annotations

import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql

from daemon.cli.serve import Daemon
from daemon.core import quotas, versions
from daemon.core.db import AliasRedeploy, AliasRetry, BuildUsage, ProjectVersion, database, utcnow
from daemon.intake import submit
from daemon.ops import cleanup, replication
from daemon.ops import usage as usage_view
from daemon.publish import golive, livealias
from tests.fakes.cf_pages_api import FakePagesApi
from tests.integration.sync.support import PG_DSN
from tests.support import in_process_daemon

WRANGLER = Path(__file__).resolve().parents[3] / "tests" / "fakes" / "wrangler"
U, P = "u1", "shop"


def config(schema: str, bucket: str, moto: str, droplet: str, pages: FakePagesApi) -> str:
    return f'''
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
[deploy]
backend = "cloudflare"
cf_account_id = "{pages.account_id}"
cf_project_name = "{pages.project}"
cf_api_base = "{pages.base_url}"
wrangler = ["{sys.executable}", "{WRANGLER}"]
'''


@pytest.fixture
def pages() -> Iterator[FakePagesApi]:
    with FakePagesApi() as api:
        yield api


def uploaded(d: Daemon, n: int, tmp: Path) -> ProjectVersion:
    """A version a build uploaded to the branch and that went live, its artifact zip in the bucket."""
    rt = d.rt
    v = versions.create(rt.outbox, user_id=U, project_id=P, prompt=f"v{n}", kind="new", status="deployed",
                        cf_deployment_id=f"upload-{n}", preview_url=f"https://upload-{n}.example.test")
    zip_path = tmp / f"v{n}.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr("index.html", f"<h1>version {n}</h1>")
    assert rt.remote_objects is not None
    rt.remote_objects.put_file(rt.layout.artifact_key(U, P, v.version_id), zip_path, "application/zip")
    with database.atomic():
        versions.set_live(rt.outbox, v, 3600)
    return v


def redeploys(schema: str) -> list[tuple[object, ...]]:
    with psycopg.connect(PG_DSN) as conn:
        return conn.execute(sql.SQL("SELECT version_id, epoch, holder, state FROM {}.project_versions_alias_redeploys "
                                    "ORDER BY created_at").format(sql.Identifier(schema))).fetchall()


def test_a_takeover_never_redeploys_what_the_old_holder_did(tmp_path: Path, pg_schema: str, moto_endpoint: str,
                                                             pages: FakePagesApi) -> None:
    bucket = f"fa-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    env = {"PREVIEWD_PG_DSN": PG_DSN, "PREVIEWD_S3_ACCESS_KEY_ID": "testing",
           "PREVIEWD_S3_SECRET_ACCESS_KEY": "testing", "CLOUDFLARE_API_TOKEN": pages.token}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with in_process_daemon(tmp_path / "a", config(pg_schema, bucket, moto_endpoint, "drop-a", pages), env=env) as a:
        assert a.rt.fleet.admit(U, P) is not None
        v1, v2 = uploaded(a, 1, tmp_path), uploaded(a, 2, tmp_path)
        # the first redeploy fails at the platform: recorded as failed, retried on the persisted schedule
        pages.fail_5xx(times=None)
        golive.walk(a.rt, U, P, "undo")  # live v1, the branch's newest deployment holds v2
        golive.drain_after(a.rt)
        retry = AliasRetry.get()
        assert retry.attempts == 1 and retry.next_at > utcnow() and retry.last_error
        assert not a.rt.fleet.is_idle(U, P)  # type: ignore[attr-defined]  # stays here until its alias moved
        assert redeploys(pg_schema) == [(v1.version_id, 1, "drop-a", "failed")]
        pages.clear_faults()
        AliasRetry.update(next_at=utcnow()).execute()
        assert livealias.retry_due(a.rt) == 1
        assert AliasRetry.select().count() == 0
        made = len(pages.deployments)
        assert made == 1 and livealias.on_branch(U, P)[0] == v1.version_id
        assert redeploys(pg_schema)[-1] == (v1.version_id, 1, "drop-a", "made")
        # billed: a Pages deployment in the export and the user's Pages quota (the failed one is not)
        assert usage_view.export_rows(a.rt.cfg)[0]["pages_deployments"] == 1
        assert quotas.usage_of(U, quotas.current_month()).pages_deployments == 1
        # a build admitted here and left queued when the project moves: the next holder closes its meter
        queued = submit.admission(a.rt, U, P, "rebuild").create(prompt="left queued")
        assert replication.flush(a.rt.sync_loop)["errors"] == {}

    with in_process_daemon(tmp_path / "b", config(pg_schema, bucket, moto_endpoint, "drop-b", pages), env=env) as b:
        lease = b.rt.fleet.admit(U, P)  # takes the project over: catch-up copies the redeploys from Postgres
        assert lease is not None and lease.takeover and lease.epoch == 2
        assert AliasRetry.select().count() == 1  # a takeover checks the alias once
        assert ProjectVersion.get_by_id(queued.version_id).failure_reason == "interrupted"
        assert BuildUsage.get_by_id(queued.version_id).finished  # its meter came from Postgres and closed here
        assert replication.flush(b.rt.sync_loop)["errors"] == {}
        with psycopg.connect(PG_DSN) as conn:
            assert conn.execute(sql.SQL("SELECT finished, row_version FROM {}.previewd_build_usage WHERE version_id "
                                        "= %s").format(sql.Identifier(pg_schema)), (queued.version_id,)).fetchone() \
                == (True, 2)
        livealias.retry_due(b.rt)
        assert len(pages.deployments) == made  # the branch already holds v1: no second redeploy
        assert livealias.on_branch(U, P)[0] == v1.version_id
        golive.walk(b.rt, U, P, "redo")  # live v2 again: the branch's newest deployment (v1's redeploy) must move
        golive.drain_after(b.rt)
        assert len(pages.deployments) == made + 1
        assert redeploys(pg_schema)[-1] == (v2.version_id, 2, "drop-b", "made")
        # the old holder's epoch is stale: it can no longer start a redeploy of this project
        rec = {"redeploy_id": "01J0000000000000000000STAL", "user_id": U, "project_id": P,
               "version_id": v1.version_id, "over": v2.version_id, "month": quotas.current_month(), "epoch": 1,
               "holder": "drop-a"}
        assert b.rt.usage_store is not None and b.rt.usage_store.begin_redeploy(rec) is False
        totals = {r["user_id"]: r for r in b.rt.usage_store.month_totals(quotas.current_month())}
        assert totals == {} or totals[U]["pages_deployments"] >= 2
        # cleanup deletes the superseded redeploy's deployment, never the one the branch holds
        step = cleanup.StepReport("delete_alias_redeploys")
        ctx = cleanup._Ctx(b.ops.cleanup, False, utcnow() + timedelta(days=400))
        cleanup.delete_alias_redeploys(ctx, step)
        assert step.counts == {"kept_on_branch": 1, "deployments": 1}
        gone = AliasRedeploy.get((AliasRedeploy.version_id == v1.version_id) & (AliasRedeploy.state == "made"))
        assert gone.deleted_at is not None and gone.deployment_id not in pages.deployments
        assert len(pages.deployments) == made
