"""A disk flood into the project's cache (or HOME) stops at the disk cap with its own reason, readable in the log;
the flood leaves the disk and both projects build again."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, log_of, page, start_daemon, victim_still_fine
from tests.support.live import LiveDaemon

ATTACKS = {
    "flood-cache": {"build": "mkdir -p dist && head -c 700000000 /dev/zero > \"$XDG_CACHE_HOME/flood\" "
                             "&& echo done > dist/index.html"},
    "flood-home": {"build": "mkdir -p dist && for i in 1 2 3 4 5 6 7; do head -c 100000000 /dev/zero "
                            "> \"$HOME/flood$i\"; done && echo done > dist/index.html"},
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    tmp = tmp_path_factory.mktemp("disk")
    d = start_daemon(tmp, ATTACKS, "[limits]\ndisk_mb = 64\n")
    try:
        assert page(d, build(d, "alice", "site", "victim")) == VICTIM_PAGE
        yield d
    finally:
        d.stop()


@pytest.mark.parametrize("attack", ["flood-cache", "flood-home"])
def test_disk_flood_stops_at_the_disk_cap(live: LiveDaemon, attack: str) -> None:
    data = live.tmp / "data"
    free_before = shutil.disk_usage(data).free
    body = build(live, "mallory", attack, attack)
    assert body["success"] is False, body
    assert body["error"]["code"] == "disk_limit", body
    log = log_of(live, body["versionId"])
    assert "disk_limit: the step's directories hold" in log and "(limit 64.00 MiB)" in log, log[-2000:]
    cache = data / "projects" / "mallory" / attack / "cache"
    assert not any(p.name.startswith("flood") for p in cache.rglob("*")) if cache.exists() else True
    assert shutil.disk_usage(data).free > free_before - 64 * 2**20  # the flood left the disk
    # the attacker's project is not wedged: a normal build of it deploys
    again = build(live, "mallory", attack, "victim page for mallory")
    assert page(live, again) == VICTIM_PAGE
    victim_still_fine(live)
