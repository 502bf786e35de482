"""A takeover holds the project's lease until its catch-up ends (issue 24: the renewer released it 2 s into a 56 s
catch-up, as if the project were idle), and gives it back when the catch-up fails. Real Postgres leases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from daemon.core.db import connect
from daemon.core.errors import Unavailable
from daemon.core.events import Events
from daemon.fleet.leased import LeasedFleet
from sync.lease import Lease, LeaseHeld, PgLeases
from sync.leasekeeper import LeaseKeeper
from tests.integration.sync.support import PG_DSN


class _NothingPending:
    def pending(self, _target: str, _key: str | None = None) -> int:
        return 0


@pytest.fixture
def droplet(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A droplet as far as admission asks: its keeper (idle release at once, so any renewer pass would release an
    idle project) over a fresh Postgres schema, its state.db, an outbox with nothing pending."""
    schema = f"t_fleet_{uuid.uuid4().hex[:12]}"
    store = PgLeases(PG_DSN, schema=schema)
    store.ensure_schema()
    connect(tmp_path)
    keeper = LeaseKeeper(store, "drop-b", ttl_s=30, release_idle_s=0.0)
    stores = SimpleNamespace(outbox=SimpleNamespace(outbox=_NothingPending()))
    fleet = LeasedFleet(keeper, stores, SimpleNamespace(), Events(),  # type: ignore[arg-type]
                        preview_domain="localhost", previews_port=0)
    assert keeper.is_idle == fleet.is_idle  # the fleet gave the keeper its idle check
    try:
        yield SimpleNamespace(fleet=fleet, keeper=keeper, store=store)
    finally:
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_the_renewer_keeps_the_lease_through_a_long_catch_up(droplet: SimpleNamespace,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def slow_catch_up(lease: Lease) -> dict[str, int]:
        # Renewer passes while the catch-up is still reading Postgres and S3 (56 s in the issue).
        for _ in range(3):
            droplet.keeper.tick()
            try:
                droplet.store.acquire("u", "p", "drop-c", 30)  # another droplet asks for the project meanwhile
                other = "drop-c got it"
            except LeaseHeld as exc:
                other = f"held by {exc.holder}"
            seen.append((droplet.keeper.holds("u", "p") is not None, other))
        return {}

    monkeypatch.setattr(droplet.fleet, "catch_up", slow_catch_up)
    lease = droplet.fleet.admit("u", "p")
    assert lease is not None and lease.holder == "drop-b"
    assert seen == [(True, "held by drop-b")] * 3, seen
    assert droplet.keeper.holds("u", "p") is not None
    droplet.keeper.tick()  # caught up, nothing queued: now the idle project's lease goes back
    assert droplet.keeper.holds("u", "p") is None


def test_a_failed_catch_up_releases_the_lease(droplet: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_catch_up(lease: Lease) -> dict[str, int]:
        droplet.keeper.tick()
        raise Unavailable("cannot read the project's rows from Postgres: down", code="catch_up_failed")

    monkeypatch.setattr(droplet.fleet, "catch_up", failing_catch_up)
    with pytest.raises(Unavailable):
        droplet.fleet.admit("u", "p")
    assert droplet.keeper.holds("u", "p") is None
    assert droplet.store.acquire("u", "p", "drop-c", 30).holder == "drop-c"  # released at once, not left to expire
    assert droplet.fleet.is_idle("u", "p")  # no hold left behind
