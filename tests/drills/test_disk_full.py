"""The data dir's disk fills up during a build: the version fails with a reason saying so, the daemon lives on."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drills.conftest import Drills


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs mounted at the data dir (unmounted at the end)."""
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(data)], check=True)
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_disk_full_during_build(small_disk: Path, drills: Drills) -> None:
    d = drills.daemon()
    ok = d.build("u", "p", "a first good version")
    assert ok["success"] is True, ok
    r = d.rebuild("u", "p", "bigout:30 more than the disk holds")
    assert r["success"] is False and r["error"]["code"] == "build_failed", r
    assert "disk is full" in r["error"]["message"], r
    assert any("No space left on device" in line for line in r["logTail"]), r["logTail"]
    assert d.get("/healthz").status_code == 200
    drills.finish(d, next_build=lambda: d.rebuild("u", "p", "small again"))
