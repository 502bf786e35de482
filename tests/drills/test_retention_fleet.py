"""Issue 24, attack 3, as reported: in a fleet, the cleanup deleted a 40-day-old preview and an unsigned GET on its
host answered 200 again on both droplets (fetched back from the bucket). Now the deletion is final everywhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.deployers.previewnames import deployment_id_for
from tests.drills.fleet_support import fleet_of
from tests.support import wait_until


def _age(data_dir: Path, version_id: str, days: int) -> None:
    """Make a version `days` old in the droplet's own state (its daemon keeps running)."""
    conn = sqlite3.connect(str(data_dir / "state.db"), timeout=30)
    try:
        with conn:
            conn.execute(f"UPDATE project_versions SET created_at = datetime('now', '-{int(days)} days') "
                         "WHERE version_id = ?", (version_id,))
    finally:
        conn.close()


def test_retention_deleted_preview_stays_deleted_on_every_droplet(tmp_path: Path, moto_endpoint: str) -> None:
    with fleet_of(tmp_path, moto_endpoint, ttl_s=3.0) as fleet:
        a, b = fleet.droplet("drop-a"), fleet.droplet("drop-b")
        old = a.build("u", "p", "forty days old")
        assert old["success"] is True, old
        new = a.rebuild("u", "p", "the live one")
        assert new["success"] is True, new
        old_url, label = old["previewUrl"], deployment_id_for("p", old["versionId"])
        # both droplets serve the old preview: drop-b fetched it from the bucket into its cache
        assert a.preview(old_url).status_code == 200
        wait_until(lambda: b.preview(old_url).text == "<h1>forty days old</h1>", 30, what="drop-b fetching it")
        assert (b.data_dir / "previews" / label).is_dir()

        _age(a.data_dir, old["versionId"], 40)
        r = a.post("/ops/cleanup", {})
        assert r.status_code == 200, r.text
        step = next(s for s in r.json()["steps"] if s["name"] == "delete_old_previews")
        assert step["ok"] and step["counts"].get("previews") == 1, step
        a.sync_flush()  # the tombstone reaches Postgres with the row

        # deleted everywhere: drop-a at once, drop-b when its sweep learns the tombstone (its cache dropped)
        assert a.preview(old_url).status_code == 404
        wait_until(lambda: not (b.data_dir / "previews" / label).exists(), 30, what="drop-b dropping its copy")
        for d in (a, b):
            for _ in range(3):  # and never fetched back from the bucket, however often it is asked
                r = d.preview(old_url)
                assert r.status_code == 404, (d.data_dir, r.text)
            assert not (d.data_dir / "previews" / label).exists()
            assert d.preview(new["previewUrl"]).text == "<h1>the live one</h1>"  # the live one is untouched

        rows = fleet.pg("SELECT preview_deleted_at IS NOT NULL, preview_url FROM {s}.project_versions "
                        "WHERE version_id = %s", old["versionId"])
        assert rows == [(True, None)], rows
        # later cleanups find nothing left to do for it (found by state, finished once)
        again = a.post("/ops/cleanup", {}).json()
        step = next(s for s in again["steps"] if s["name"] == "delete_old_previews")
        assert step["ok"] and not step["counts"].get("previews") and not step["counts"].get("finished"), step
