"""The data dir's disk fills up: a build that fills it fails with a reason saying so; with the disk full, every write
answers 503 `disk_full` (Retry-After, the filesystem named), signed reads keep working, health detail, /metrics and
an alert say so, and once space is freed nothing was lost (SQLite intact, `git fsck` clean, builds deploy)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.drills.conftest import Drills
from tests.drills.support import Drill
from tests.support import signed_headers

RESERVE = '[limits]\ndisk_reserve_mb = 4\n'  # a 20 MiB disk: the drill's tiny builds fit above it


def _tmpfs_data_dir(tmp_path: Path, size: str) -> Iterator[Path]:
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(data)], check=True)
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs mounted at the data dir (unmounted at the end)."""
    yield from _tmpfs_data_dir(tmp_path, "20m")


@pytest.fixture
def roomier_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs at the data dir: room for a version with a few MiB of output."""
    yield from _tmpfs_data_dir(tmp_path, "40m")


def fill(data: Path, leave: int = 0) -> Path:
    """Write a filler file until the filesystem refuses another byte, then give back `leave` bytes; returns it
    (delete it to free the space)."""
    filler = data / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (2**20, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    assert os.statvfs(data).f_bavail == 0
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


def assert_disk_full(r: httpx.Response, data: Path, what: str) -> dict[str, Any]:
    """503 disk_full with Retry-After, naming the data dir's filesystem."""
    assert r.status_code == 503, (what, r.status_code, r.text)
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == "disk_full", (what, err)
    assert err["filesystem"] == str(data), (what, err)
    assert str(data) in err["message"], (what, err)
    assert int(r.headers["retry-after"]) > 0, (what, r.headers)
    return err


def test_disk_full_during_build(small_disk: Path, drills: Drills) -> None:
    d = drills.daemon(RESERVE)
    ok = d.build("u", "p", "a first good version")
    assert ok["success"] is True, ok
    r = d.rebuild("u", "p", "bigout:30 more than the disk holds")
    assert r["success"] is False and r["error"]["code"] == "build_failed", r
    assert "disk is full" in r["error"]["message"], r
    assert any("No space left on device" in line for line in r["logTail"]), r["logTail"]
    assert d.get("/healthz").status_code == 200
    drills.finish(d, next_build=lambda: d.rebuild("u", "p", "small again"))


def test_disk_filled_outside_the_output_dir(small_disk: Path, drills: Drills) -> None:
    d = drills.daemon(RESERVE)
    ok = d.build("u", "p", "a first good version")
    assert ok["success"] is True, ok
    r = d.rebuild("u", "p", "bigsrc:30 more than the disk holds, beside the sources")
    # Recorded (not left `building` with the disk still full): the file beside the sources was removed for it.
    assert r["success"] is False and r["error"]["code"] == "build_failed", r
    assert "disk is full" in r["error"]["message"] and "workspace files" in r["error"]["message"], r
    assert not (small_disk / "projects" / "u" / "p" / "work" / "blob.bin").exists()
    drills.finish(d, next_build=lambda: d.rebuild("u", "p", "small again"))


def test_disk_fills_during_a_rollback(roomier_disk: Path, drills: Drills) -> None:
    data = roomier_disk
    d = drills.daemon(RESERVE)
    v1 = d.build("u", "p", "bigout:3 a version with 3 MiB of output")
    v2 = d.rebuild("u", "p", "a small version")
    assert v1["success"] is True and v2["success"] is True, (v1, v2)
    filler = fill(data, leave=5 * 2**20)  # above the reserve, below what the redeploy unpacks and copies
    r = _post(d, f"/rollback/{v1['versionId']}", {"userId": "u", "projectId": "p"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == "deploy_failed", body
    assert "is full" in body["error"]["message"] and str(data) in body["error"]["message"], body
    assert d.get("/projects/u/p/preview").json()["latestVersionId"] == v2["versionId"]  # the live pointer held
    filler.unlink()
    again = _post(d, f"/rollback/{v1['versionId']}", {"userId": "u", "projectId": "p"})
    assert again.status_code == 200 and again.json()["success"] is True, again.text
    drills.finish(d, next_build=lambda: d.rebuild("u", "p", "after the disk was freed"))


def _post(d: Drill, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
    return d.post(path, payload or {})


def test_full_disk_is_named_and_loses_nothing(small_disk: Path, drills: Drills) -> None:
    data = small_disk
    d = drills.daemon(RESERVE, env={"PREVIEWD_CF_WEBHOOK_SECRET": "hook-secret"})
    v1 = d.build("u", "p", "first version")
    v2 = d.rebuild("u", "p", "second version")
    assert v1["success"] is True and v2["success"] is True, (v1, v2)
    before = d.get("/versions", params={"userId": "u", "projectId": "p"}).json()

    ref = {"userId": "u", "projectId": "p"}
    # Below the reserve: builds and rollbacks are refused before they start; the small writes still go on.
    filler = fill(data, leave=2 * 2**20)
    for what, r in (("new build", d.post("/build-preview-for-new-project", {**ref, "projectId": "p2",
                                                                           "prompt": "another"})),
                    ("rebuild", d.post("/rebuild-preview", {**ref, "prompt": "third version"})),
                    ("rollback", _post(d, f"/rollback/{v1['versionId']}", ref))):
        err = assert_disk_full(r, data, what)
        assert err["reserveBytes"] == 4 * 2**20 and err["freeBytes"] < err["reserveBytes"], err
    undo = _post(d, "/projects/u/p/undo")
    assert undo.status_code == 200 and undo.json()["versionId"] == v1["versionId"], undo.text
    redo = _post(d, "/projects/u/p/redo")
    assert redo.status_code == 200 and redo.json()["versionId"] == v2["versionId"], redo.text
    filler.unlink()
    before = d.get("/versions", params={"userId": "u", "projectId": "p"}).json()

    # Full: every write fails for space, and each says so.
    filler = fill(data)
    answers = {
        "new build": d.post("/build-preview-for-new-project", {**ref, "projectId": "p2", "prompt": "another"}),
        "rebuild": d.post("/rebuild-preview", {**ref, "prompt": "third version"}),
        "rollback": _post(d, f"/rollback/{v1['versionId']}", ref),
        "undo": _post(d, "/projects/u/p/undo"),
        "redo": _post(d, "/projects/u/p/redo"),
        "pin": _post(d, f"/versions/{v1['versionId']}/pin"),
    }
    for what, r in answers.items():
        assert_disk_full(r, data, what)

    # The Pages callback for a deployment it does not know writes nothing, so it is still acknowledged (one that
    # settles a deployment answers 503 disk_full: tests/integration/api/test_disk_full.py).
    hook = d.http.post(d.base + "/cf-pages-callback", headers={"cf-webhook-auth": "hook-secret",
                                                                "content-type": "application/json"},
                       content=b'{"data": {"deployment_id": "dep-unknown"}, "alert_event": '
                               b'"EVENT_DEPLOYMENT_SUCCESS"}')
    assert hook.status_code == 200 and hook.json()["matched"] is False, hook.text

    # A signed history read works though its nonce cannot be written; its replay is still refused.
    target = "/versions?userId=u&projectId=p"
    headers = signed_headers("GET", target)
    read = httpx.get(d.base + target, headers=headers, timeout=60, trust_env=False)
    assert read.status_code == 200, read.text
    assert [v["versionId"] for v in read.json()["versions"]] == [v["versionId"] for v in before["versions"]]
    replay = httpx.get(d.base + target, headers=headers, timeout=60, trust_env=False)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "signature_replayed", replay.text

    assert d.get("/healthz").status_code == 200  # alive: reads are served
    health = d.get("/healthz", params={"detail": "1"}).json()
    assert health["ok"] is False and health["disk"]["belowReserve"] is True, health
    assert health["disk"]["filesystem"] == str(data), health
    assert "disk_full" in [a["name"] for a in health["alerts"]], health
    prom = d.get("/metrics").text
    free = [float(line.split()[1]) for line in prom.splitlines() if line.startswith("previewd_disk_free_bytes ")]
    assert free and free[0] < 2**20, free  # (the daemon may have freed a page or two since the fill)
    assert 'previewd_disk_full_refusals_total{kind="reserve"}' in prom, prom
    assert 'previewd_disk_full_refusals_total{kind="write"}' in prom, prom

    filler.unlink()
    health = d.get("/healthz", params={"detail": "1"}).json()
    assert health["disk"]["belowReserve"] is False, health
    after = d.get("/versions", params={"userId": "u", "projectId": "p"}).json()
    assert after == before  # the refused writes left nothing behind
    undo = _post(d, "/projects/u/p/undo")
    assert undo.status_code == 200 and undo.json()["versionId"] == v1["versionId"], undo.text
    redo = _post(d, "/projects/u/p/redo")
    assert redo.status_code == 200 and redo.json()["versionId"] == v2["versionId"], redo.text
    drills.finish(d, next_build=lambda: d.rebuild("u", "p", "after the disk was freed"))
