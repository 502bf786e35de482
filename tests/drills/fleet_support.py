"""Fleet drill helpers: droplets (live daemons) sharing one Postgres schema, one moto bucket and one KV fake."""

from __future__ import annotations

import contextlib
import json
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.drills.support import Drill, drill_config
from tests.fakes.cf_kv_server import CloudflareKVServer
from tests.integration.sync.support import PG_DSN, s3_admin


class Fleet:
    """Shared stores, and droplets on their own data dirs under ``tmp``."""

    def __init__(self, tmp: Path, moto: str, *, ttl_s: float = 3.0, release_idle_s: float = 0.5) -> None:
        self.tmp = tmp
        self.moto = moto
        self.ttl_s = ttl_s
        self.release_idle_s = release_idle_s
        self.schema = f"t_fleet_{uuid.uuid4().hex[:10]}"
        self.bucket = f"fleet-{uuid.uuid4().hex[:12]}"
        self.admin = s3_admin(moto)
        self.admin.create_bucket(Bucket=self.bucket)
        self.kv = CloudflareKVServer(token="kv-" + uuid.uuid4().hex).start()
        self.env = {"PREVIEWD_PG_DSN": PG_DSN, "CLOUDFLARE_API_TOKEN": self.kv.token,
                    "PREVIEWD_S3_ACCESS_KEY_ID": "testing", "PREVIEWD_S3_SECRET_ACCESS_KEY": "testing"}
        self.droplets: list[Drill] = []

    def config(self, name: str) -> str:
        return f'''
[fleet]
enabled = true
droplet_id = "{name}"
lease_ttl_s = {self.ttl_s}
release_idle_s = {self.release_idle_s}
[replica]
backend = "postgres"
schema = "{self.schema}"
[objects]
backend = "s3"
bucket = "{self.bucket}"
endpoint_url = "{self.moto}"
region = "us-east-1"
[kv]
backend = "cloudflare"
cf_account_id = "{self.kv.account_id}"
cf_namespace_id = "{self.kv.namespace_id}"
cf_api_base = "{self.kv.base_url}"
'''

    def droplet(self, name: str, extra: str = "", *, start_timeout_s: float = 30.0) -> Drill:
        """A started droplet named ``name`` on ``tmp/name`` (``extra``: more config, TOML)."""
        root = self.tmp / name
        root.mkdir(parents=True, exist_ok=True)
        d = Drill(root, drill_config(root, self.config(name) + extra, sync_interval_s=0.1))
        d.env = self.env
        d.start_timeout_s = start_timeout_s
        self.droplets.append(d)
        return d.start()

    def pg(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of ``query`` with ``{s}`` standing for the fleet's schema."""
        with psycopg.connect(PG_DSN) as conn:
            return conn.execute(sql.SQL(query).format(s=sql.Identifier(self.schema)), args).fetchall()

    def lease(self, user: str, project: str) -> tuple[Any, ...] | None:
        """(holder, epoch, live version, still live) of the project's lease row, or None."""
        rows = self.pg("SELECT holder, epoch, live_version_id, expires_at > clock_timestamp() "
                       "FROM {s}.project_versions_leases WHERE user_id = %s AND project_id = %s", user, project)
        return rows[0] if rows else None

    def kv_live(self, user: str, project: str) -> str | None:
        entry = self.kv.store.get(f"{user}:{project}")
        return json.loads(entry[0])["latestVersionId"] if entry else None

    def close(self) -> None:
        for d in self.droplets:
            if d.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    d.proc.send_signal(signal.SIGCONT)
            d.stop()
        self.kv.stop()
        for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:  # a page is at most 1000 keys, what one DeleteObjects takes (the store cache holds thousands)
                self.admin.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
        self.admin.delete_bucket(Bucket=self.bucket)
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))


@contextmanager
def fleet_of(tmp: Path, moto: str, **kw: Any) -> Iterator[Fleet]:
    f = Fleet(tmp, moto, **kw)
    try:
        yield f
    finally:
        f.close()
