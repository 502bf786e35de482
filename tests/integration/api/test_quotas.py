"""Plans and quotas over the API (issue 19): each quota at its boundary with exact figures, plan changes, orgs, the
month rollover on a controlled clock, restarts, the billing export, alerts, and a 50-request burst over real HTTP.

The daemons' workers are not started: admitted builds stay queued (they count, unfinished, toward the builds
quota), so no test here spends time building.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from daemon.core import quotas, versions
from daemon.core.db import BuildUsage, ProjectVersion
from tests.integration.api.conftest import Served
from tests.support import ApiClient, auth, in_process_daemon

NEW = "/build-preview-for-new-project"
PLANS = """
[quotas]
default_plan = "free"

[plans.free]
builds = 3
new_projects_per_user_per_hour = 100
rebuilds_per_project_per_hour = 100

[plans.pro]
builds = 100
new_projects_per_user_per_hour = 100
rebuilds_per_project_per_hour = 100
"""


@pytest.fixture
def quota_api(make_daemon: Callable[..., Daemon]) -> Callable[[str], ApiClient]:
    """An API client over a daemon with the given plans config (worker not started)."""
    clients: list[Any] = []

    def make(text: str = PLANS) -> ApiClient:
        d = make_daemon(text, render={"enabled": False})
        client = TestClient(d.app)
        client.__enter__()
        clients.append(client)
        return ApiClient(client, d)

    yield make  # type: ignore[misc]
    for c in clients:
        c.__exit__(None, None, None)


def new(api: ApiClient, project: str, user: str = "u1", **kw: Any) -> Any:
    return api.post(NEW, {"userId": user, "projectId": project, "prompt": "a shop", **kw}, params={"wait": "false"})


def finish(version_id: str, *, status: str = "failed", **fields: Any) -> None:
    """End a queued build as the pipeline would (its meter closes in that transaction)."""
    extra = {"failure_reason": "build_failed"} if status == "failed" else {}
    versions.update(None, version_id, status=status, **extra, **fields)


def refused(r: Any) -> dict[str, Any]:
    assert r.status_code == 429, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == "quota_exceeded"
    assert int(r.headers["retry-after"]) >= 1
    return err


def next_month_start() -> str:
    return quotas.iso(quotas.month_reset(quotas.current_month()))


# -- each quota at its boundary ---------------------------------------------------------------------------------

def test_builds_quota_refuses_the_fourth_build_with_exact_figures(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS)
    for i in range(3):
        assert new(api, f"p{i}").status_code == 202
    err = refused(new(api, "p3"))
    assert (err["quota"], err["used"], err["limit"], err["plan"]) == ("builds", 3, 3, "free")
    assert err["resetsAt"] == next_month_start()
    assert "3 of 3" in err["message"]
    assert not ProjectVersion.select().where(ProjectVersion.project_id == "p3").exists()  # refused: no row
    # finished builds count the same as queued ones; a rebuild and a rollback are builds too
    vid = new(api, "x", user="u2").json()["versionId"]
    finish(vid, status="deployed", preview_url="http://x")
    for i in range(2):
        r = api.post("/rebuild-preview", {"userId": "u2", "projectId": "x", "prompt": f"again {i}"},
                     params={"wait": "false"})
        assert r.status_code == 202, r.text
        finish(r.json()["versionId"], status="deployed", preview_url="http://y")
    err = refused(api.post("/rebuild-preview", {"userId": "u2", "projectId": "x", "prompt": "more"}))
    assert (err["used"], err["limit"]) == (3, 3)
    err = refused(api.post(f"/rollback/{vid}", {"userId": "u2", "projectId": "x"}))
    assert (err["quota"], err["used"], err["limit"]) == ("builds", 3, 3)
    text = api.get("/metrics").text
    assert 'previewd_quota_refusals_total{quota="builds"} 3.0' in text


def test_cpu_seconds_quota_refuses_once_used_reaches_the_limit(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS + "\n[plans.cpu]\nbuild_cpu_seconds = 10.5\n")
    assert api.put("/users/u1/plan", {"plan": "cpu"}).status_code == 200
    vid = new(api, "p0").json()["versionId"]
    quotas.add_cpu(vid, 6.25)   # two sandboxed steps, as the pipeline meters them
    quotas.add_cpu(vid, 4.0)
    finish(vid)
    assert new(api, "p1").status_code == 202  # 10.25 < 10.5: still admitted
    vid2 = ProjectVersion.get(ProjectVersion.project_id == "p1").version_id
    quotas.add_cpu(vid2, 0.25)
    finish(vid2)
    err = refused(new(api, "p2"))
    assert (err["quota"], err["used"], err["limit"]) == ("build_cpu_seconds", 10.5, 10.5)
    assert err["resetsAt"] == next_month_start()


def test_storage_quota_counts_the_users_objects_pinned_ones_too(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS + "\n[plans.small]\nstorage_bytes = 1000\n")
    api.put("/users/u1/plan", {"plan": "small"})
    rt = api.daemon.rt
    vid = new(api, "p0").json()["versionId"]
    zip_path = rt.layout.local_object(rt.layout.artifact_key("u1", "p0", vid))
    zip_path.parent.mkdir(parents=True)
    zip_path.write_bytes(b"z" * 600)
    quotas.refresh_storage(rt.layout.objects, "u1")
    finish(vid, status="deployed", preview_url="http://x", pinned=True)
    assert new(api, "p1").status_code == 202  # 600 < 1000
    finish(ProjectVersion.get(ProjectVersion.project_id == "p1").version_id)
    archived = rt.layout.objects / "_archive" / "u1" / "p0" / "snapshots" / "old.zip"  # archived objects count
    archived.parent.mkdir(parents=True)
    archived.write_bytes(b"a" * 400)

    report = api.daemon.ops.cleanup.run(dry_run=False)
    assert report.step("refresh_storage").counts == {"users": 1}  # type: ignore[union-attr]
    err = refused(new(api, "p2"))
    assert (err["quota"], err["used"], err["limit"], err["resetsAt"]) == ("storage_bytes", 1000, 1000, None)
    assert api.get("/usage", params={"userId": "u1"}).json()["usage"]["storageBytes"] == 1000


def test_pages_deployments_quota_counts_deployments_and_builds_in_flight(
        quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS + "\n[plans.pages]\npages_deployments = 2\nbuilds = 50\n")
    api.daemon.rt.deployer.counts_pages_quota = True  # the quota applies only where builds create Pages deployments
    api.put("/users/u1/plan", {"plan": "pages"})
    vid = new(api, "p0").json()["versionId"]
    versions.update(None, vid, status="deploying", cf_deployment_id="dep-1")  # uploaded: the meter closes
    assert BuildUsage.get_by_id(vid).pages_deployment
    versions.update(None, vid, status="deployed")  # the later confirmation does not count it again
    assert new(api, "p1").status_code == 202  # 1 deployment + this build in flight = 2
    err = refused(new(api, "p2"))
    assert (err["quota"], err["used"], err["limit"]) == ("pages_deployments", 2, 2)
    finish(ProjectVersion.get(ProjectVersion.project_id == "p1").version_id)  # failed: no deployment
    assert new(api, "p2").status_code == 202


def test_concurrent_projects_quota(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS + "\n[plans.two]\nconcurrent_projects = 2\n")
    api.put("/users/u1/plan", {"plan": "two"})
    first = new(api, "p0").json()["versionId"]
    assert new(api, "p1").status_code == 202
    err = refused(new(api, "p2"))
    assert (err["quota"], err["used"], err["limit"], err["resetsAt"]) == ("concurrent_projects", 2, 2, None)
    finish(first)
    assert new(api, "p2").status_code == 202


def test_plan_rate_caps_override_the_global_ones(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS + "\n[plans.slow]\nnew_projects_per_user_per_hour = 1\n")
    api.put("/users/u1/plan", {"plan": "slow"})
    assert new(api, "p0").status_code == 202
    r = new(api, "p1")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert r.json()["error"]["limit"] == 1


# -- plans: assignment, orgs, changes ---------------------------------------------------------------------------

def test_a_plan_change_takes_effect_on_the_next_request(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS)
    for i in range(3):
        new(api, f"p{i}")
    refused(new(api, "p3"))
    r = api.put("/users/u1/plan", {"plan": "pro"})
    assert r.status_code == 200 and r.json()["plan"] == "pro"
    assert new(api, "p3").status_code == 202
    assert api.get("/usage", params={"userId": "u1"}).json()["plan"] == "pro"
    api.put("/users/u1/plan", {"plan": "free"})
    assert refused(new(api, "p4"))["used"] == 4  # back on free: 4 of 3


def test_an_orgs_plan_applies_to_requests_that_name_the_org(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS)
    assert api.put("/orgs/acme/plan", {"plan": "pro"}).status_code == 200
    for i in range(3):
        new(api, f"p{i}")
    refused(new(api, "p3"))  # without orgId: the user's own (default) plan
    assert new(api, "p3", orgId="acme").status_code == 202
    assert BuildUsage.get(BuildUsage.project_id == "p3").org_id == "acme"
    report = api.get("/usage", params={"userId": "u1", "orgId": "acme"}).json()
    assert report["plan"] == "pro" and report["usage"]["builds"] == 4


def test_plan_routes_refuse_bad_input_naming_the_field(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS)
    r = api.put("/users/u1/plan", {"plan": "gold"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "plan"
    assert api.put("/users/bad%20id/plan", {"plan": "pro"}).status_code == 400
    r = new(api, "p0", orgId="no/slash")
    assert r.status_code == 400 and r.json()["error"]["field"] == "orgId"
    assert api.get("/usage", params={"userId": "u1", "month": "2026-13"}).json()["error"]["field"] == "month"
    assert api.get("/usage").json()["error"]["field"] == "userId"
    unsigned = api.client.put("/users/u1/plan", content=b'{"plan": "pro"}')
    assert unsigned.status_code == 401


def test_quotas_off_without_plans_changes_nothing_but_still_meters(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api("[rate_limits]\nnew_projects_per_user_per_hour = 50\n")
    for i in range(8):
        assert new(api, f"p{i}").status_code == 202
    report = api.get("/usage", params={"userId": "u1"}).json()
    assert report["quotasEnabled"] is False and report["plan"] is None and report["usage"]["builds"] == 8
    r = api.put("/users/u1/plan", {"plan": "pro"})
    assert r.status_code == 400


# -- months, restarts -------------------------------------------------------------------------------------------

def test_the_month_rolls_over_at_utc_midnight(quota_api: Callable[[str], ApiClient],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    api = quota_api(PLANS)
    now = [datetime(2026, 1, 31, 23, 59, 58)]
    monkeypatch.setattr(quotas, "clock", lambda: now[0])
    for i in range(3):
        new(api, f"p{i}")
    err = refused(new(api, "p3"))
    assert err["resetsAt"] == "2026-02-01T00:00:00Z" and err["month"] == "2026-01"
    now[0] = datetime(2026, 1, 31, 23, 59, 59, 999000)
    refused(new(api, "p3"))
    now[0] = datetime(2026, 2, 1, 0, 0, 0)
    assert new(api, "p3").status_code == 202
    jan = api.get("/usage", params={"userId": "u1", "month": "2026-01"}).json()
    feb = api.get("/usage", params={"userId": "u1", "month": "2026-02"}).json()
    assert (jan["usage"]["builds"], feb["usage"]["builds"]) == (3, 1)
    assert feb["resetsAt"] == "2026-03-01T00:00:00Z"
    now[0] = datetime(2026, 12, 31, 23, 59, 59)  # and across the year
    assert quotas.iso(quotas.month_reset(quotas.current_month())) == "2027-01-01T00:00:00Z"


def test_a_restart_mid_month_keeps_usage_and_counts_an_interrupted_build_once(tmp_path: Path) -> None:
    with in_process_daemon(tmp_path, PLANS, render={"enabled": False}) as d, TestClient(d.app) as c:
        api = ApiClient(c, d)
        done = new(api, "p0").json()["versionId"]
        quotas.add_cpu(done, 2.5)
        finish(done)
        running = new(api, "p1").json()["versionId"]
        versions.update(None, running, status="building")
        quotas.add_cpu(running, 1.25)  # the install ended; then the daemon is killed during `pnpm build`
    with in_process_daemon(tmp_path, PLANS, render={"enabled": False}) as d2, TestClient(d2.app) as c2:
        api2 = ApiClient(c2, d2)
        assert versions.recover_interrupted(d2.rt.outbox)[0] == [running]  # what `Daemon.start` does first
        assert ProjectVersion.get_by_id(running).failure_reason == "interrupted"
        u = api2.get("/usage", params={"userId": "u1"}).json()["usage"]
        assert (u["builds"], u["buildsUnfinished"], u["buildCpuSeconds"]) == (2, 0, 3.75)
        versions.recover_interrupted(None)  # a second recovery (another restart) counts nothing again
        assert api2.get("/usage", params={"userId": "u1"}).json()["usage"]["buildCpuSeconds"] == 3.75
        assert new(api2, "p2").status_code == 202
        assert refused(new(api2, "p3"))["used"] == 3


# -- visibility -------------------------------------------------------------------------------------------------

def test_export_is_csv_with_one_row_per_user_and_json_lines(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS)
    api.put("/users/u2/plan", {"plan": "pro"})
    for user, n in (("u1", 2), ("u2", 3), ("u3", 1)):
        for i in range(n):
            vid = new(api, f"p{i}", user=user).json()["versionId"]
            quotas.add_cpu(vid, 1.5)
            finish(vid)
    r = api.get("/usage/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["user_id"] for row in rows] == ["u1", "u2", "u3"]
    by_user = {row["user_id"]: row for row in rows}
    assert by_user["u2"]["plan"] == "pro" and by_user["u1"]["plan"] == "free"
    assert (by_user["u2"]["builds"], by_user["u2"]["build_cpu_seconds"]) == ("3", "4.5")
    assert set(rows[0]) == {"month", "user_id", "org_id", "plan", "builds", "builds_unfinished",
                            "build_cpu_seconds", "artifact_bytes", "pages_deployments", "storage_bytes",
                            "generator_tokens", "repair_attempts", "repair_tokens"}  # README "Repair"
    lines = api.get("/usage/export", params={"format": "jsonl"}).text.splitlines()
    assert [json.loads(line)["builds"] for line in lines] == [2, 3, 1]
    negotiated = api.get("/usage/export", headers={"accept": "application/jsonl"})
    assert negotiated.headers["content-type"].startswith("application/jsonl")
    assert api.get("/usage/export", params={"month": "2020-01"}).text.splitlines() == \
        [",".join(rows[0])]  # header only: nobody used anything then
    assert api.get("/usage/export", params={"format": "xml"}).json()["error"]["field"] == "format"


def test_usage_report_and_metrics_by_plan(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS)
    vid = new(api, "p0").json()["versionId"]
    quotas.add_cpu(vid, 2.0)
    report = api.get("/usage", params={"userId": "u1"}).json()
    assert report["limits"]["builds"] == 3 and report["usage"]["buildsUnfinished"] == 1
    builds = next(q for q in report["quotas"] if q["quota"] == "builds")
    assert (builds["used"], builds["limit"], builds["ratio"]) == (1, 3, 0.3333)
    text = api.get("/metrics").text
    assert 'previewd_usage_month{meter="builds",plan="free"} 1.0' in text
    assert 'previewd_usage_month{meter="build_cpu_seconds",plan="free"} 2.0' in text


class _Hook(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.bodies = []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", _Hook.bodies
    server.shutdown()


def test_an_alert_at_80_percent_is_posted_once_per_user_quota_and_month(
        quota_api: Callable[[str], ApiClient], hook: tuple[str, list[dict[str, Any]]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, bodies = hook
    api = quota_api(PLANS.replace("builds = 3", "builds = 5") + f'\n[alerts]\nwebhook_url = "{url}"\n')
    for i in range(3):
        new(api, f"p{i}")
    assert api.daemon.ops.alerts.quota_alerts() == []  # 3 of 5 = 60%
    new(api, "p3")
    posted = api.daemon.ops.alerts.quota_alerts()  # 4 of 5 = 80%
    assert [(b["userId"], b["quota"], b["used"], b["limit"]) for b in posted] == [("u1", "builds", 4, 5)]
    new(api, "p4")
    assert api.daemon.ops.alerts.quota_alerts() == []  # once per month, even at 100%
    from tests.support import wait_until

    wait_until(lambda: len(bodies) == 1, 10, what="the alert webhook receiving the alert")
    assert bodies[0]["alert"] == "quota_usage" and bodies[0]["state"] == "firing"
    monkeypatch.setattr(quotas, "clock", lambda: datetime(2099, 1, 1))
    assert api.daemon.ops.alerts.quota_alerts() == []  # a new month with nothing used yet


# -- the burst --------------------------------------------------------------------------------------------------

def test_a_burst_of_50_at_the_builds_boundary_admits_exactly_the_remainder(tmp_path: Path) -> None:
    text = PLANS.replace("builds = 3", "builds = 30") + "\n[rate_limits]\nper_ip_per_hour = 1000\n"
    with in_process_daemon(tmp_path, text, render={"enabled": False}) as d, Served(d) as served:
        client = httpx.Client(base_url=served.base, auth=auth(), trust_env=False, timeout=60)
        for i in range(12):  # 12 used, 18 left
            r = client.post(NEW, params={"wait": "false"},
                            json={"userId": "u1", "projectId": f"pre{i}", "prompt": "x"})
            assert r.status_code == 202, r.text

        def one(i: int) -> httpx.Response:
            with httpx.Client(base_url=served.base, auth=auth(), trust_env=False, timeout=60) as c:
                return c.post(NEW, params={"wait": "false"},
                              json={"userId": "u1", "projectId": f"burst{i}", "prompt": "x"})

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(one, range(50)))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(202) == 18 and codes.count(429) == 32, codes
        assert {r.json()["error"]["used"] for r in answers if r.status_code == 429} == {30}
        assert BuildUsage.select().where(BuildUsage.user_id == "u1").count() == 30
        assert ProjectVersion.select().where(ProjectVersion.user_id == "u1").count() == 30
        client.close()


def test_daemonctl_plan_usage_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import daemonctl
    from tests.support import TEST_SECRET

    monkeypatch.setenv("PREVIEWD_HMAC_SECRET", TEST_SECRET)
    with in_process_daemon(tmp_path, PLANS, render={"enabled": False}) as d, Served(d) as served:
        def ctl(*argv: str) -> tuple[int, str]:
            rc = daemonctl.main(["--config", str(tmp_path / "previewd.toml"), "--url", served.base, *argv])
            return rc, capsys.readouterr().out

        assert ctl("plan", "u1", "pro")[0] == 0
        assert ctl("plan", "acme", "free", "--org")[0] == 0
        assert ctl("plan", "u1", "gold")[0] == 1  # 400 naming the plan
        with httpx.Client(base_url=served.base, auth=auth(), trust_env=False) as c:
            c.post(NEW, params={"wait": "false"}, json={"userId": "u1", "projectId": "p", "prompt": "x"})
        rc, out = ctl("usage", "u1")
        assert rc == 0 and "plan pro" in out
        assert any(line.split() == ["builds", "1", "100", "1%"] for line in out.splitlines()), out
        rc, out = ctl("usage", "--export")
        assert rc == 0 and [row["user_id"] for row in csv.DictReader(io.StringIO(out))] == ["u1"]
        rc, out = ctl("usage", "--export", "--format", "jsonl")
        assert rc == 0 and json.loads(out.splitlines()[0])["plan"] == "pro"


def test_a_quota_refusal_costs_nothing_against_the_rate_caps(quota_api: Callable[[str], ApiClient]) -> None:
    api = quota_api(PLANS + "\n[plans.one]\nbuilds = 1\nnew_projects_per_user_per_hour = 2\n"
                            "[plans.ten]\nbuilds = 10\nnew_projects_per_user_per_hour = 2\n"
                            "[rate_limits]\nper_ip_per_hour = 10\n")  # exactly the 10 signed writes below
    api.put("/users/u1/plan", {"plan": "one"})
    assert new(api, "p0").status_code == 202
    for i in range(5):
        refused(new(api, f"q{i}"))  # rolled back with the admission: no rate event, no row, no meter
    api.put("/users/u1/plan", {"plan": "ten"})
    assert new(api, "p1").status_code == 202  # the second of two new projects this hour
    r = new(api, "p2")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    for _ in range(5):  # usage reads are not counted against the per-IP cap (it is used up now)
        assert api.get("/usage", params={"userId": "u1"}).status_code == 200
    assert api.get("/usage/export").status_code == 200
    assert api.put("/users/u1/plan", {"plan": "one"}).json()["error"]["message"].startswith("rate cap reached")
    assert BuildUsage.select().count() == 2
