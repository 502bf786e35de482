"""The operations routes over a real runtime: pin, metrics, alerts (with a real alert webhook), cleanup, stored logs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from daemon.core import versions
from daemon.core.db import ProjectVersion, utcnow
from daemon.core.events import BuildDone
from daemon.wiring import build_app
from tests.integration.ops.conftest import Seeder
from tests.support import ApiClient


@pytest.fixture
def client(ops: Seeder) -> Iterator[ApiClient]:
    app = build_app(ops.d.cfg, ops.d.services)
    with TestClient(app) as tc:
        yield ApiClient(tc)


def test_pin_unpin_signed_idempotent_404(ops: Seeder, client: ApiClient) -> None:
    v = ops.version("u", "p", 1)
    assert client.post(f"/versions/{v.version_id}/pin", {}, sign_it=False).status_code == 401
    r = client.post(f"/versions/{v.version_id}/pin", {})
    assert r.status_code == 200 and r.json()["pinned"] is True
    rv = ops.row(v).row_version  # type: ignore[union-attr]
    assert client.post(f"/versions/{v.version_id}/pin", {}).json()["pinned"] is True
    assert ops.row(v).row_version == rv  # type: ignore[union-attr]  # idempotent: no new row version
    assert client.post(f"/versions/{v.version_id}/unpin", {}).json()["pinned"] is False
    missing = client.post("/versions/01J00000000000000000000000/pin", {})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "version_not_found"


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_back(ops: Seeder, client: ApiClient) -> None:
    now = utcnow()
    done = ops.version("u", "p", 0.001)
    versions.update(ops.rt.outbox, done.version_id, build_duration_ms=30_000, install_duration_ms=9_000,
                    deploy_duration_ms=500)
    ops.rt.events.publish(BuildDone(ProjectVersion.get_by_id(done.version_id)))
    bad = ops.version("u", "p", 0.002, status="failed")
    versions.update(ops.rt.outbox, bad.version_id, failure_reason="build_failed")
    ops.rt.events.publish(BuildDone(ProjectVersion.get_by_id(bad.version_id)))
    for i in range(3):  # Pages deployments this month
        ProjectVersion.create(version_id=f"01J0000000000000000000000{i}", user_id="u", project_id="cf", prompt="x",
                              status="deployed", cf_deployment_id=f"dep-{i}", created_at=now - timedelta(minutes=i))
    ops.make_live(done)  # leaves a KV outbox row behind → sync backlog
    with ops.rt.outbox.outbox._conn() as conn:  # a stuck replica item: backlog and lag per destination
        conn.execute("INSERT INTO sync_outbox (destination, key, payload, created_at) VALUES ('replica', 'k', '{}', "
                     "strftime('%s','now') - 30)")
        conn.commit()
    ops.d.ops.metrics.webhook_received("deployment.success")
    ops.d.ops.metrics.rate_limited("ip")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = _families(r.text)
    builds = {s.labels["status"]: s.value for s in fams["previewd_builds"].samples if s.name.endswith("_total")}
    assert builds == {"deployed": 1.0, "failed": 1.0}
    reasons = {s.labels["reason"]: s.value for s in fams["previewd_build_failures"].samples
               if s.name.endswith("_total")}
    assert reasons == {"build_failed": 1.0}
    hist = {s.name: s.value for s in fams["previewd_build_duration_seconds"].samples if not s.labels}
    assert hist["previewd_build_duration_seconds_count"] == 1 and hist["previewd_build_duration_seconds_sum"] == 30
    assert fams["previewd_pages_deployments_month"].samples[0].value == 3
    assert fams["previewd_pages_deployments_quota"].samples[0].value == 500
    backlog = {s.labels["destination"]: s.value for s in fams["previewd_sync_backlog"].samples}
    assert backlog["replica"] == 1
    lag = {s.labels["destination"]: s.value for s in fams["previewd_sync_lag_seconds"].samples}
    assert lag["replica"] >= 30
    disk = {s.labels["area"]: s.value for s in fams["previewd_disk_used_bytes"].samples}
    assert set(disk) == {"projects", "objects", "previews", "logs", "pnpm_store"}
    assert disk["objects"] > 0 and disk["previews"] > 0
    assert fams["previewd_queue_depth"].samples[0].value == 0
    assert [s.value for s in fams["previewd_rate_limited_requests"].samples if s.name.endswith("_total")] == [1]


class _Sink(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    event = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(json.loads(body))
        type(self).event.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_failure_rate_alert_fires_once_posts_and_clears(ops: Seeder, client: ApiClient) -> None:
    _Sink.received, _Sink.event = [], threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ops.rt.cfg.alerts.webhook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        ops.rt.cfg.alerts.disk_free_min_percent = 0  # this machine's disk is not under test here
        now = utcnow()
        made = []
        for i in range(5):  # 2 of 5 failed: 40% >= 20%
            made.append(ProjectVersion.create(version_id=f"01J000000000000000000000F{i}", user_id="u", project_id="p",
                                              prompt="x", status="failed" if i < 2 else "deployed",
                                              created_at=now, updated_at=now))
        firing = ops.d.ops.alerts.evaluate()
        names = [a.name for a in firing if a.name != "memory_pressure"]
        assert names == ["build_failure_rate"]
        assert _Sink.event.wait(10)
        assert _Sink.received[0]["alert"] == "build_failure_rate" and _Sink.received[0]["state"] == "firing"
        ops.d.ops.alerts.evaluate()  # still firing: no second post
        detail = client.get("/healthz/detail").json()
        assert detail["ok"] is False and "build_failure_rate" in [a["name"] for a in detail["alerts"]]
        ProjectVersion.update(updated_at=now - timedelta(hours=1)).execute()  # the window moves on
        _Sink.event.clear()
        assert "build_failure_rate" not in [a.name for a in ops.d.ops.alerts.evaluate()]
        assert _Sink.event.wait(10)
        assert [(x["alert"], x["state"]) for x in _Sink.received] == [("build_failure_rate", "firing"),
                                                                     ("build_failure_rate", "resolved")]
    finally:
        server.shutdown()
        server.server_close()


def test_quota_and_webhook_auth_alerts(ops: Seeder) -> None:
    ops.rt.cfg.retention.pages_quota_month = 5
    ops.rt.cfg.alerts.disk_free_min_percent = 0
    now = utcnow()
    for i in range(4):  # 4 of 5 = 80%
        ProjectVersion.create(version_id=f"01J000000000000000000000Q{i}", user_id="u", project_id="p", prompt="x",
                              status="deployed", cf_deployment_id=f"d{i}", created_at=now)
    ops.d.ops.metrics.webhook_refused("auth")
    names = {a.name for a in ops.d.ops.alerts.evaluate()}
    assert {"pages_quota", "webhook_auth_failures"} <= names


def test_disk_alert_threshold(ops: Seeder) -> None:
    ops.rt.cfg.alerts.disk_free_min_percent = 100  # every disk has less than 100% free
    assert "disk_pressure" in {a.name for a in ops.d.ops.alerts.evaluate()}


def test_cleanup_route_dry_run(ops: Seeder, client: ApiClient) -> None:
    old = ops.version("u", "p", 400)
    ops.make_live(ops.version("u", "p", 1))
    assert client.post("/ops/cleanup", {}, sign_it=False, params={"dryRun": "1"}).status_code == 401
    r = client.post("/ops/cleanup", {}, params={"dryRun": "1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dryRun"] is True and body["ok"] is True
    assert {s["name"]: s["counts"] for s in body["steps"]}["delete_old_rows"]["rows"] == 1
    assert ops.row(old) is not None


def test_stored_log_as_events_then_status(ops: Seeder, client: ApiClient) -> None:
    v = ops.version("u", "p", 1, status="failed")
    ops.rt.layout.log_path(v.version_id).write_text("one\ntwo\nthree\n")
    r = client.get(f"/builds/{v.version_id}/logs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.replace("\r\n", "\n").split("\n\n") if e.strip()]
    assert [e.split("data: ", 1)[1] for e in events[:3]] == ["one", "two", "three"]
    assert events[3].startswith("event: status")
    assert json.loads(events[3].split("data: ", 1)[1])["status"] == "failed"
    resumed = client.get(f"/builds/{v.version_id}/logs", headers={"Last-Event-ID": "2"})
    assert "data: one" not in resumed.text and "data: three" in resumed.text
    assert client.get("/builds/01J00000000000000000000000/logs").status_code == 404


def test_live_stream_no_gap_no_repeat_and_disconnect_unsubscribes(ops: Seeder) -> None:
    import asyncio

    from daemon.project.buildlog import BuildLog

    v = ops.version("u", "p", 0.001, status="building", preview=False, artifact=False)
    ops.rt.layout.log_path(v.version_id).unlink()
    blog = BuildLog(ops.rt.layout.log_path(v.version_id))
    ops.rt.live_logs[v.version_id] = blog
    for i in range(50):
        blog.line(f"early {i}")

    async def read() -> list[str]:
        got: list[str] = []
        gen = ops.d.services.logs.events(v.version_id, 0)
        def write() -> None:
            for i in range(200):
                blog.line(f"late {i}")

        writer = threading.Thread(target=write)
        async for msg in gen:
            if msg.event == "status":
                break
            got.append(str(msg.data))
            if len(got) == 10:
                writer.start()  # the build thread writes while we stream
            if len(got) == 250:
                ops.rt.live_logs.pop(v.version_id)
                ProjectVersion.update(status="deployed").where(ProjectVersion.version_id == v.version_id).execute()
                blog.close()
        writer.join()
        return got

    lines = asyncio.run(read())
    assert lines == [f"early {i}" for i in range(50)] + [f"late {i}" for i in range(200)]
    assert blog._listeners == []


def test_disconnect_leaves_no_listener(ops: Seeder) -> None:
    import asyncio

    from daemon.project.buildlog import BuildLog

    v = ops.version("u", "p", 0.001, status="building", preview=False, artifact=False)
    blog = BuildLog(ops.rt.layout.log_path(v.version_id))
    ops.rt.live_logs[v.version_id] = blog
    blog.line("first")

    async def read_one() -> None:
        gen = ops.d.services.logs.events(v.version_id, 0)
        async for _ in gen:
            assert len(blog._listeners) == 1
            await gen.aclose()
            break

    asyncio.run(read_one())
    assert blog._listeners == []
    blog.line("after the client left")  # the build goes on unharmed
    blog.close()
