"""The daemon with every remote edge on: rows to Postgres, artifacts and packs to S3 (moto), pointers to Workers KV."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.fakes.cf_kv_server import CloudflareKVServer
from tests.fakes.tiny_generator import ECHO_PAGE, generator_config, write_generator
from tests.integration.sync.support import PG_DSN, s3_admin
from tests.support.live import LiveDaemon


@pytest.fixture
def remote(tmp_path: Path, moto_endpoint: str) -> Iterator[dict[str, Any]]:
    schema = f"t_e2e_{uuid.uuid4().hex[:10]}"
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    admin = s3_admin(moto_endpoint)
    admin.create_bucket(Bucket=bucket)
    kv = CloudflareKVServer(token="kv-" + uuid.uuid4().hex).start()
    env = {"PREVIEWD_PG_DSN": PG_DSN, "CLOUDFLARE_API_TOKEN": kv.token, "PREVIEWD_S3_ACCESS_KEY_ID": "testing",
           "PREVIEWD_S3_SECRET_ACCESS_KEY": "testing"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield {"schema": schema, "bucket": bucket, "kv": kv, "moto": moto_endpoint, "admin": admin}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    kv.stop()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _config(tmp: Path, r: dict[str, Any]) -> str:
    gen = write_generator(tmp, ECHO_PAGE)
    return generator_config(gen) + textwrap.dedent(f'''
        [replica]
        backend = "postgres"
        schema = "{r["schema"]}"
        [objects]
        backend = "s3"
        bucket = "{r["bucket"]}"
        endpoint_url = "{r["moto"]}"
        region = "us-east-1"
        [kv]
        backend = "cloudflare"
        cf_account_id = "{r["kv"].account_id}"
        cf_namespace_id = "{r["kv"].namespace_id}"
        cf_api_base = "{r["kv"].base_url}"
        [sync]
        interval_s = 0.2
    ''')


def _pg_rows(schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(PG_DSN) as conn:
        q = sql.SQL("SELECT version_id, status, artifact_url, row_version FROM {}.project_versions "
                    "ORDER BY version_id").format(sql.Identifier(schema))
        return conn.execute(q).fetchall()


def test_everything_replicates_and_verifies(tmp_path: Path, remote: dict[str, Any]) -> None:
    from tests.support import wait_until

    d = LiveDaemon(tmp_path, _config(tmp_path, remote)).start()
    try:
        b1 = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "r", "prompt": "one"}).json()
        assert b1["success"] is True, b1
        b2 = d.post("/rebuild-preview", {"userId": "u", "projectId": "r", "prompt": "two"}).json()
        assert b2["success"] is True, b2
        assert d.post("/ops/sync", {}).status_code == 200

        def settled() -> bool:
            rows = _pg_rows(remote["schema"])
            return len(rows) == 2 and all(r[1] == "deployed" and r[2] for r in rows)

        wait_until(settled, timeout=30)
        rows = _pg_rows(remote["schema"])
        assert [r[0] for r in rows] == sorted([b1["versionId"], b2["versionId"]])
        assert all(r[2].startswith(f"s3://{remote['bucket']}/u/r/snapshots/") for r in rows)
        keys = {o["Key"] for o in remote["admin"].list_objects_v2(Bucket=remote["bucket"])["Contents"]}
        assert f"u/r/snapshots/{b2['versionId']}.zip" in keys
        assert any(k.startswith("u/r/packs/git_") for k in keys)
        wait_until(lambda: "u:r" in remote["kv"].store, timeout=15)
        ptr = json.loads(remote["kv"].store["u:r"][0])
        assert ptr["latestVersionId"] == b2["versionId"]
        # local version rows show the confirmed S3 URL too
        assert d.get(f"/versions/{b2['versionId']}").json()["artifactUrl"].startswith("s3://")
        verify = d.get("/ops/sync/verify").json()  # v2-signed by the live daemon's client
        assert verify["count"] == 0, verify
    finally:
        d.stop()

    # another droplet without this project answers its history from Postgres
    (tmp_path / "other").mkdir()
    other = LiveDaemon(tmp_path / "other", _config(tmp_path, remote))
    other.start()
    try:
        hist = other.get("/versions", params={"userId": "u", "projectId": "r"}).json()["versions"]
        assert [h["versionId"] for h in hist] == [b2["versionId"], b1["versionId"]]
        assert other.get(f"/versions/{b1['versionId']}").json()["status"] == "deployed"
    finally:
        other.stop()

