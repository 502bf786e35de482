"""Remote stores failing under a live daemon: Postgres unreachable mid-sync, S3 down, SIGKILL inside a sync batch.

Postgres is reached through a TCP proxy that the drill takes down and brings back (the real server is never
stopped); moto S3 likewise. Builds never wait on either: the outbox holds the rows until they come back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.drills.conftest import Drills
from tests.integration.sync.support import PG_DSN, TcpProxy, proxied_dsn, s3_admin

SCHEMA_PREFIX = "t_drill_"


class SlowTcpProxy(TcpProxy):
    """A TcpProxy whose every forwarded chunk waits `delay_s`, so one sync batch takes seconds."""

    delay_s = 0.0
    forwarded = 0

    @classmethod
    def _pump(cls, src: socket.socket, dst: socket.socket) -> None:  # type: ignore[override]
        try:
            while data := src.recv(65536):
                if cls.delay_s:
                    time.sleep(cls.delay_s)
                dst.sendall(data)
                cls.forwarded += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def pg() -> Iterator[dict[str, Any]]:
    """A fresh schema and a proxy in front of the real Postgres."""
    schema = SCHEMA_PREFIX + uuid.uuid4().hex[:10]
    proxy = SlowTcpProxy(("127.0.0.1", int(psycopg.conninfo.conninfo_to_dict(PG_DSN).get("port") or 5432)))
    yield {"schema": schema, "proxy": proxy, "dsn": proxied_dsn(proxy)}
    proxy.close()
    SlowTcpProxy.delay_s = 0.0
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _replica(schema: str) -> str:
    return f'[replica]\nbackend = "postgres"\nschema = "{schema}"\n'


def _pg_count(schema: str) -> int:
    with psycopg.connect(PG_DSN) as conn:
        q = sql.SQL("SELECT count(*) FROM {}.project_versions").format(sql.Identifier(schema))
        try:
            return int(conn.execute(q).fetchone()[0])  # type: ignore[index]
        except psycopg.errors.UndefinedTable:
            return 0


def test_postgres_unreachable_mid_sync_then_back(drills: Drills, pg: dict[str, Any]) -> None:
    d = drills.daemon(_replica(pg["schema"]), env={"PREVIEWD_PG_DSN": pg["dsn"]})
    first = d.build("u", "p", "replicated before the outage")
    assert first["success"] is True
    d.sync_flush()
    pg["proxy"].down()
    during = d.rebuild("u", "p", "built while Postgres is unreachable")
    assert during["success"] is True, during  # the build never waits on the replica
    assert "pg" in d.outbox_failing("replica")  # the failure is recorded, the rows stay queued
    pg["proxy"].restore()
    deadline = time.monotonic() + 60
    while d.sync_flush().get("errors") and time.monotonic() < deadline:
        time.sleep(0.5)
    drills.finish(d, pg_schema=pg["schema"])


def test_sigkill_inside_a_sync_batch(drills: Drills, pg: dict[str, Any]) -> None:
    """Rows pile up while Postgres is away; the batch that sends them is cut by SIGKILL; a restart sends them."""
    d = drills.daemon(_replica(pg["schema"]), env={"PREVIEWD_PG_DSN": pg["dsn"]})
    pg["proxy"].down()
    for i in range(4):
        assert d.build("u", f"p{i}", f"project {i}")["success"] is True
    SlowTcpProxy.delay_s = 0.05
    SlowTcpProxy.forwarded = 0
    pg["proxy"].restore()
    def kick() -> None:
        with contextlib.suppress(Exception):  # the daemon dies under this request
            d.post("/ops/sync", {})

    threading.Thread(target=kick, daemon=True).start()
    deadline = time.monotonic() + 30
    while SlowTcpProxy.forwarded < 2000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert SlowTcpProxy.forwarded >= 2000, "the sync batch never started"
    d.kill()
    landed = _pg_count(pg["schema"])
    SlowTcpProxy.delay_s = 0.0
    d.start()
    drills.finish(d, pg_schema=pg["schema"])
    assert _pg_count(pg["schema"]) == 5 and landed < 4  # 4 + the next build; the kill came before the last row


def test_s3_down_then_up(drills: Drills, moto_endpoint: str) -> None:
    port = int(moto_endpoint.rsplit(":", 1)[1])
    proxy = TcpProxy(("127.0.0.1", port))
    try:
        bucket = f"drill-{uuid.uuid4().hex[:12]}"
        admin = s3_admin(moto_endpoint)
        admin.create_bucket(Bucket=bucket)
        d = drills.daemon(f'[objects]\nbackend = "s3"\nbucket = "{bucket}"\n'
                          f'endpoint_url = "http://127.0.0.1:{proxy.port}"\nregion = "us-east-1"\n',
                          env={"PREVIEWD_S3_ACCESS_KEY_ID": "testing", "PREVIEWD_S3_SECRET_ACCESS_KEY": "testing"})
        proxy.down()
        r = d.build("u", "p", "built while S3 is down")
        assert r["success"] is True, r  # artifacts land locally first; the upload waits in the outbox
        assert d.outbox_failing("objects")
        assert d.get(f"/versions/{r['versionId']}").json()["artifactUrl"] is None
        proxy.restore()
        deadline = time.monotonic() + 60
        while d.sync_flush().get("errors") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert d.get(f"/versions/{r['versionId']}").json()["artifactUrl"].startswith(f"s3://{bucket}/")
        keys = {o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])}
        assert f"u/p/snapshots/{r['versionId']}.zip" in keys
        assert any(k.startswith("u/p/packs/") for k in keys)
        drills.finish(d)
    finally:
        proxy.close()
