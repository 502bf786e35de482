"""Fixtures for the sync integration tests: real Postgres, moto's S3 server, the fake KV API, fault proxies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.fakes.cf_kv_server import CloudflareKVServer
from tests.integration.sync.support import (
    PG_DSN,
    FaultyHttpProxy,
    ManualClock,
    TcpProxy,
    s3_admin,
)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name for one test, dropped (CASCADE) afterwards."""
    name = f"t_sync_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    """A TCP proxy in front of the real Postgres (never stop the real server)."""
    info = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    proxy = TcpProxy((str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)))
    yield proxy
    proxy.close()


@pytest.fixture
def bucket(moto_endpoint: str) -> Iterator[str]:
    """A fresh bucket, emptied and removed afterwards."""
    name = f"sync-{uuid.uuid4().hex[:16]}"
    admin = s3_admin(moto_endpoint)
    admin.create_bucket(Bucket=name)
    yield name
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            admin.delete_object(Bucket=name, Key=item["Key"])
    admin.delete_bucket(Bucket=name)


@pytest.fixture
def s3_fault_proxy(moto_endpoint: str) -> Iterator[FaultyHttpProxy]:
    """An HTTP proxy in front of moto that can answer 500s."""
    proxy = FaultyHttpProxy(moto_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def kv_server(clock: ManualClock) -> Iterator[CloudflareKVServer]:
    """The fake Workers KV API on loopback, with expiry on the test's clock."""
    server = CloudflareKVServer(token="tok-" + uuid.uuid4().hex, clock=clock).start()
    yield server
    server.stop()
