"""Two droplets, one project (issue 16): 409 while another droplet writes it, catch-up on takeover, a SIGSTOPped
droplet's late writes refused and its build failed as interrupted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.drills.fleet_support import fleet_of
from tests.support import wait_until


def test_one_writer_per_project_takeover_and_fencing(tmp_path: Path, moto_endpoint: str) -> None:
    with fleet_of(tmp_path, moto_endpoint, ttl_s=3.0) as fleet:
        a, b = fleet.droplet("drop-a"), fleet.droplet("drop-b")
        first = a.build("u", "p", "first version")
        assert first["success"] is True, first
        slow = a.rebuild("u", "p", "slowbuild:3 second", wait=False)
        # another droplet is refused while drop-a writes the project, and told where it is
        r = b.post("/rebuild-preview", {"userId": "u", "projectId": "p", "prompt": "elsewhere"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "project_elsewhere" and r.json()["error"]["holder"] == "drop-a"
        second = a.wait_status(slow["versionId"], ("deployed",))
        # drop-a lets go once idle; drop-b takes over and catches up: rows, history, live version
        wait_until(lambda: not (fleet.lease("u", "p") or (None, 0, None, True))[3], 20,
                   what="drop-a releasing the idle lease")
        third = b.rebuild("u", "p", "third, on drop-b")
        assert third["success"] is True, third
        v3 = b.get(f"/versions/{third['versionId']}").json()
        assert v3["parentVersionId"] == second["versionId"]  # from the latest deployed version, built elsewhere
        assert b.preview(third["previewUrl"]).text == "<h1>third, on drop-b</h1>"
        holder, epoch_b, live, _ = fleet.lease("u", "p")  # type: ignore[misc]
        assert holder == "drop-b" and epoch_b == 2 and live == third["versionId"]
        assert {v["versionId"] for v in b.get("/versions", params={"userId": "u", "projectId": "p"})
                .json()["versions"]} >= {first["versionId"], second["versionId"], third["versionId"]}
        # previews from any droplet: drop-a never built `third`, it fetches the artifact from the bucket
        wait_until(lambda: a.preview(third["previewUrl"]).text == "<h1>third, on drop-b</h1>", 20,
                   what="drop-a serving drop-b's preview")
        # the live alias: one stable host, the live version, on every droplet
        alias = third["liveUrl"]
        assert alias.startswith("http://p--u.localhost:"), alias
        assert b.get("/versions", params={"userId": "u", "projectId": "p"}).json()["liveUrl"] == alias
        for d in (a, b):
            assert d.preview(alias).text == "<h1>third, on drop-b</h1>"

        # drop-a takes it back, starts a slow build, and is SIGSTOPped past the TTL
        wait_until(lambda: not (fleet.lease("u", "p") or (None, 0, None, True))[3], 20,
                   what="drop-b releasing the idle lease")
        stale = a.rebuild("u", "p", "slowbuild:2 stale", wait=False)
        a.wait_log(stale["versionId"], "generating")
        os.kill(a.pid, signal.SIGSTOP)
        try:
            time.sleep(fleet.ttl_s + 1)
            undo = b.post("/projects/u/p/undo", {})
            assert undo.status_code == 200, undo.text
        finally:
            os.kill(a.pid, signal.SIGCONT)
        after = a.wait_status(stale["versionId"], ("failed",), timeout=60)
        assert after["failureReason"] == "interrupted" and "lost the lease" in after["failureMessage"]
        holder, epoch, live, _ = fleet.lease("u", "p")  # type: ignore[misc]
        assert holder == "drop-b" and epoch == epoch_b + 2 and live == second["versionId"]
        # Postgres keeps drop-b's view: the stale droplet's version is failed by the takeover, never deployed
        status, reason = fleet.pg("SELECT status::text, failure_reason FROM {s}.project_versions WHERE version_id = %s",
                                  stale["versionId"])[0]
        assert (status, reason) == ("failed", "interrupted")
        wait_until(lambda: a.get("/ops/fleet").json()["fencingRefusals"] > 0, 20,
                   what="drop-a's stale writes refused and counted")
        assert a.get("/ops/fleet").json()["leasesLost"] >= 1
        b.sync_flush()
        assert fleet.kv_live("u", "p") == second["versionId"]
        # the alias followed the undo at once on the droplet that made it, and on the other once synced
        assert b.preview(alias).text == "<h1>slowbuild:3 second</h1>"
        wait_until(lambda: a.preview(alias).text == "<h1>slowbuild:3 second</h1>", 20,
                   what="drop-a's alias following drop-b's undo")

        # draining: new writes get 503 `draining`, /healthz says so (the proxy moves the droplet's projects),
        # and its leases go back as its projects go idle
        other = a.build("u", "q", "a project drop-a holds")
        assert other["success"] is True, other
        assert a.post("/ops/drain", {}).json()["draining"] is True
        r = a.post("/rebuild-preview", {"userId": "u", "projectId": "q", "prompt": "refused"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "draining", r.text
        assert a.get("/healthz").status_code == 503
        wait_until(lambda: a.get("/ops/fleet").json()["leasesHeld"] == 0, 20, what="drop-a releasing its leases")
        assert b.rebuild("u", "q", "moved to drop-b")["success"] is True
