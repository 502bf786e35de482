"""A full data disk under the in-process API: the errors a full filesystem raises (real SQLite, real ENOSPC on a
small tmpfs) are recognised as such, the Pages callback answers 503 disk_full instead of 500, and a signed read is
admitted with its nonce kept in memory."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import peewee
import pytest
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from daemon.core import diskspace, nonces
from daemon.core.db import ProjectVersion
from tests.integration.api.conftest import add_version
from tests.support import signed_headers

HOOK_SECRET = "hook-secret-for-tests"


def _mount(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def fill(where: Path) -> Path:
    """Write a filler file until the filesystem refuses another byte."""
    filler = where / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (2**20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def small_data(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at tmp_path/data, where the in-process daemon keeps its state."""
    data = tmp_path / "data"
    _mount(data, "16m")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_full_disk_errors_are_recognised(small_data: Path) -> None:
    db = peewee.SqliteDatabase(str(small_data / "t.db"), pragmas={"journal_mode": "wal"})
    db.execute_sql("CREATE TABLE t (x BLOB)")
    fill(small_data)
    with pytest.raises(peewee.OperationalError) as caught, db.atomic():
        for _ in range(64):
            db.execute_sql("INSERT INTO t VALUES (randomblob(65536))")
    assert diskspace.is_disk_full(caught.value), repr(caught.value)
    with pytest.raises(OSError) as os_err:
        (small_data / "more.bin").write_bytes(b"x" * 65536)
    assert diskspace.is_disk_full(os_err.value)
    assert diskspace.caused_by_full_disk(os_err.value, small_data)
    err = diskspace.disk_full(small_data, os_err.value)
    assert err.status == 503 and err.code == "disk_full" and err.extra["filesystem"] == str(small_data)
    assert err.headers["Retry-After"] == str(diskspace.RETRY_AFTER_S)
    with pytest.raises(peewee.OperationalError) as other:
        db.execute_sql("SELECT * FROM no_such_table")
    assert not diskspace.is_disk_full(other.value)  # other errors stay what they are
    db.close()


@pytest.fixture
def on_small_disk(small_data: Path, daemon_factory: Callable[..., Daemon]) -> Iterator[tuple[Daemon, TestClient]]:
    d = daemon_factory('[limits]\ndisk_reserve_mb = 4\n', env={"PREVIEWD_CF_WEBHOOK_SECRET": HOOK_SECRET})
    with TestClient(d.app) as client:
        yield d, client


def _hook(client: TestClient, deployment: str) -> object:
    body = (b'{"alert_event": "EVENT_DEPLOYMENT_FAILURE", "data": {"deployment_id": "' + deployment.encode()
            + b'"}}')
    return client.post("/cf-pages-callback", content=body,
                       headers={"cf-webhook-auth": HOOK_SECRET, "content-type": "application/json"})


def test_pages_callback_on_full_disk_answers_disk_full(on_small_disk: tuple[Daemon, TestClient],
                                                       small_data: Path) -> None:
    d, client = on_small_disk
    vid = add_version(d, "u", "p", status="deploying")
    ProjectVersion.update(cf_deployment_id="dep-1").where(ProjectVersion.version_id == vid).execute()
    filler = fill(small_data)
    r = _hook(client, "dep-1")
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "disk_full" and err["filesystem"] == str(small_data), err
    assert int(r.headers["retry-after"]) > 0
    assert ProjectVersion.get_by_id(vid).status == "deploying"  # nothing half-settled: the sender retries
    assert "disk_full" in {a.name for a in d.ops.alerts.evaluate()}  # the operator hears of it
    assert d.ops.metrics.disk_full_total.labels(kind="write")._value.get() == 1
    filler.unlink()
    r = _hook(client, "dep-1")  # the sender's retry, once there is space
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    assert ProjectVersion.get_by_id(vid).status == "failed"


def test_signed_read_on_full_disk_keeps_its_nonce_in_memory(on_small_disk: tuple[Daemon, TestClient],
                                                           small_data: Path) -> None:
    d, client = on_small_disk
    add_version(d, "u", "p", status="failed")
    filler = fill(small_data)
    target = "/versions?userId=u&projectId=p"
    headers = signed_headers("GET", target)
    r = client.get(target, headers=headers)
    assert r.status_code == 200 and len(r.json()["versions"]) == 1, r.text
    assert nonces.in_memory.seen(headers["x-sheen-signature"])  # not written to state.db: kept in memory
    again = client.get(target, headers=headers)
    assert again.status_code == 401 and again.json()["error"]["code"] == "signature_replayed", again.text
    filler.unlink()
    # Once the disk has room the signature still counts as used (the database path checks the memory too).
    assert client.get(target, headers=headers).json()["error"]["code"] == "signature_replayed"
    # A write on a full disk is refused as such by the guard itself (its nonce cannot be written).
    filler = fill(small_data)
    r = client.post("/versions/" + add_version_id(d) + "/pin", content=b"{}",
                    headers=signed_headers("POST", f"/versions/{add_version_id(d)}/pin", b"{}"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "disk_full", r.text
    filler.unlink()


def add_version_id(d: Daemon) -> str:
    """The one version of u/p."""
    return str(ProjectVersion.get((ProjectVersion.user_id == "u") & (ProjectVersion.project_id == "p")).version_id)
