"""Project leases against the real Postgres (issue 16): acquire, renew, expire, steal, stale epochs refused."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from sync.handlers import fenced_kv_handler
from sync.lease import LeaseHeld, PgLeases
from sync.leasekeeper import LeaseKeeper
from sync.outbox import OutboxItem
from sync.registry import make_kv
from sync.replica import PostgresReplica
from tests.integration.sync.records import record
from tests.integration.sync.support import PG_DSN


@pytest.fixture
def leases(pg_schema: str) -> Iterator[PgLeases]:
    store = PgLeases(PG_DSN, schema=pg_schema)
    store.ensure_schema()
    yield store
    store.close()


def test_acquire_is_exclusive_and_renewable_by_its_holder(leases: PgLeases) -> None:
    a = leases.acquire("u1", "p1", "drop-a", 30)
    assert a.epoch == 1 and a.previous is None and not a.takeover
    with pytest.raises(LeaseHeld) as held:
        leases.acquire("u1", "p1", "drop-b", 30)
    assert held.value.holder == "drop-a" and held.value.code == "project_elsewhere"
    again = leases.acquire("u1", "p1", "drop-a", 30)  # its own holder retakes it: same epoch
    assert again.epoch == 1
    renewed = leases.renew(a, 30)
    assert renewed is not None and renewed.expires_at >= a.expires_at
    assert leases.acquire("u1", "p2", "drop-b", 30).epoch == 1  # another project is another lease


def test_an_expired_lease_is_stolen_with_a_new_epoch_and_the_old_holder_cannot_renew(leases: PgLeases) -> None:
    a = leases.acquire("u1", "p1", "drop-a", 0.3)
    time.sleep(0.5)
    b = leases.acquire("u1", "p1", "drop-b", 30)
    assert b.epoch == a.epoch + 1 and b.previous == "drop-a" and b.takeover
    assert leases.renew(a, 30) is None
    assert not leases.release(a)  # a stale holder cannot release the new holder's lease either
    assert leases.current("u1", "p1")["holder"] == "drop-b"


def test_release_lets_another_droplet_in_at_once(leases: PgLeases) -> None:
    a = leases.acquire("u1", "p1", "drop-a", 30)
    assert leases.release(a)
    b = leases.acquire("u1", "p1", "drop-b", 30)
    assert b.epoch == 2 and b.takeover


def test_only_one_of_racing_droplets_gets_the_lease(pg_schema: str) -> None:
    stores = [PgLeases(PG_DSN, schema=pg_schema) for _ in range(6)]
    stores[0].ensure_schema()
    won: list[str] = []
    barrier = threading.Barrier(len(stores))

    def race(i: int) -> None:
        barrier.wait()
        with contextlib.suppress(LeaseHeld):
            won.append(stores[i].acquire("u1", "race", f"drop-{i}", 30).holder)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    for s in stores:
        s.close()


def test_replica_refuses_a_stale_epoch_and_counts_it(pg_schema: str, leases: PgLeases) -> None:
    rep = PostgresReplica(PG_DSN, schema=pg_schema)
    a = leases.acquire("u1", "p1", "drop-a", 0.3)
    assert rep.upsert_versions([record(1, "building", 2, epoch=a.epoch)]) == []
    time.sleep(0.5)
    b = leases.acquire("u1", "p1", "drop-b", 30)
    # the paused holder's later write (a deployed row) is refused: the new holder's view stands
    assert rep.upsert_versions([record(1, "deployed", 5, epoch=a.epoch)]) == [record(1)["version_id"]]
    assert rep.fencing_refusals == 1
    assert rep.get_version(record(1)["version_id"])["status"] == "building"
    rep.upsert_versions([record(1, "failed", 3, epoch=b.epoch)])
    assert rep.get_version(record(1)["version_id"])["status"] == "failed"
    # a new row from the stale holder is refused too (an INSERT, not only an update)
    assert rep.upsert_versions([record(2, "queued", 1, epoch=a.epoch)]) == [record(2)["version_id"]]
    assert rep.get_version(record(2)["version_id"]) is None
    # unfenced records (no fleet) pass as before
    assert rep.upsert_versions([record(3, "queued", 1, project_id="other")]) == []
    rep.close()


def test_pointer_moves_are_fenced_in_postgres_and_the_kv(pg_schema: str, leases: PgLeases, tmp_path) -> None:
    kv = make_kv("local", db_path=tmp_path / "kv.db")
    refused: list[str] = []
    handle = fenced_kv_handler(kv, leases, refused.append)
    a = leases.acquire("u1", "p1", "drop-a", 0.3)

    def item(i: int, epoch: int, live: str) -> OutboxItem:
        payload = {"key": "u1:p1", "value": f'{{"latestVersionId": "{live}"}}', "ttl": 60, "epoch": epoch,
                   "user_id": "u1", "project_id": "p1", "live_version_id": live, "undo": ["v0"], "redo": []}
        return OutboxItem(i, "kv", "u1:p1", payload, 0.0, 0)

    handle([item(1, a.epoch, "v1")])
    assert leases.current("u1", "p1")["live_version_id"] == "v1"
    time.sleep(0.5)
    b = leases.acquire("u1", "p1", "drop-b", 30)
    handle([item(2, b.epoch, "v2")])
    handle([item(3, a.epoch, "v1")])  # the stale holder tries to move the pointer back
    assert refused == ["u1:p1"]
    assert leases.current("u1", "p1")["live_version_id"] == "v2"
    assert b"v2" in (kv.get("u1:p1") or b"")


def test_keeper_renews_releases_when_idle_and_reports_a_lost_lease(leases: PgLeases) -> None:
    busy = {"on": True}
    lost: list[int] = []
    keeper = LeaseKeeper(leases, "drop-a", 0.6, release_idle_s=0.0, is_idle=lambda _u, _p: not busy["on"],
                         on_lost=lambda lease: lost.append(lease.epoch))
    lease, new = keeper.claim("u1", "p1")
    assert new and keeper.epoch_of("u1", "p1") == lease.epoch
    assert keeper.claim("u1", "p1") == (lease, False)  # held and fresh: no round trip, not new
    keeper.start()
    time.sleep(1.5)  # past two TTLs: only the renewer keeps it
    assert keeper.holds("u1", "p1") is not None
    with pytest.raises(LeaseHeld):
        leases.acquire("u1", "p1", "drop-b", 30)
    busy["on"] = False
    deadline = time.monotonic() + 3
    while keeper.holds("u1", "p1") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keeper.holds("u1", "p1") is None
    assert leases.acquire("u1", "p1", "drop-b", 30).epoch == lease.epoch + 1
    keeper.stop()
    # a keeper whose lease was stolen while it was away learns so at its next renewal
    busy["on"] = True
    k2 = LeaseKeeper(leases, "drop-c", 0.3, on_lost=lambda lease: lost.append(lease.epoch))
    l2, _ = k2.claim("u1", "p9")
    time.sleep(0.5)
    leases.acquire("u1", "p9", "drop-d", 30)
    assert k2.confirm("u1", "p9") is None and lost == [l2.epoch] and k2.lost == 1
