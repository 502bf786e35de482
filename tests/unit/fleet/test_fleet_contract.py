"""One contract suite for both Fleet implementations (daemon/fleet/seam.py): a droplet alone and a droplet of a
fleet answer the same calls the same way wherever they agree, and each as its docstring says where they differ.
The leased one runs over real Postgres leases; its catch-up reads an empty replica."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from daemon.core.db import ProjectVersion, connect
from daemon.core.errors import Conflict, Unavailable
from daemon.core.events import BuildDone, Events
from daemon.core.layout import Layout
from daemon.deployers.local import LocalDeployer
from daemon.fleet.leased import LeasedFleet
from daemon.fleet.seam import Fleet, FleetFigures
from daemon.fleet.single import SingleDroplet
from sync.lease import PgLeases
from sync.leasekeeper import LeaseKeeper
from tests.integration.sync.support import PG_DSN


class _NothingPending:
    def pending(self, _target: str, _key: str | None = None) -> int:
        return 0


@pytest.fixture(params=["single", "leased"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    layout = Layout.of(tmp_path)
    layout.create()
    connect(tmp_path)
    deployer = LocalDeployer(layout.previews, preview_domain="preview.test", port=8081)
    if request.param == "single":
        yield SingleDroplet(deployer)
        return
    schema = f"t_fleet_{uuid.uuid4().hex[:12]}"
    store = PgLeases(PG_DSN, schema=schema)
    store.ensure_schema()
    keeper = LeaseKeeper(store, "drop-a", ttl_s=30, release_idle_s=0.0)
    pushed: list[str] = []
    stores = SimpleNamespace(layout=layout, replica=SimpleNamespace(fetch_versions=lambda _u, _p: []),
                             outbox=SimpleNamespace(outbox=_NothingPending()), local_objects=None, remote_objects=None,
                             usage=None,
                             sync_loop=SimpleNamespace(nudge=lambda: None, drain_now=pushed.append))
    leased = LeasedFleet(keeper, stores, deployer, Events(),  # type: ignore[arg-type]
                         preview_domain="preview.test", previews_port=8081)
    try:
        yield leased
    finally:
        keeper.stop()
        store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _in_fleet(fleet: Fleet) -> bool:
    return bool(fleet.status()["enabled"])


def test_a_free_project_is_admitted_and_stays_writable(fleet: Fleet) -> None:
    lease = fleet.admit("u", "p")
    assert (lease is not None) == _in_fleet(fleet)
    if lease is not None:
        assert lease.holder == "drop-a" and lease.epoch >= 1
    fleet.accepted()
    assert fleet.build_may_start(ProjectVersion(user_id="u", project_id="p")) is None
    assert fleet.lapsed("u", "p") is None and fleet.lost_lease("u", "p") is None
    assert fleet.live_elsewhere("u", "p") is None  # this droplet writes it (or is alone): its own rows say
    again = fleet.admit("u", "p")  # admitting again keeps the project at the same epoch
    assert (again is None and lease is None) or (again is not None and lease is not None and again.epoch == lease.epoch)


def test_holds_balance_and_the_project_goes_idle_after(fleet: Fleet) -> None:
    fleet.admit("u", "p")
    fleet.hold("u", "p")
    fleet.hold("u", "p")
    fleet.unhold("u", "p")
    if isinstance(fleet, LeasedFleet):
        assert not fleet.is_idle("u", "p")
    fleet.unhold("u", "p")
    if isinstance(fleet, LeasedFleet):
        assert fleet.is_idle("u", "p") and fleet.guards.size() == (0, 0)


def test_leases_are_visible_only_in_a_fleet(fleet: Fleet) -> None:
    fleet.admit("u", "p")
    row = fleet.lease_of("u", "p")
    if _in_fleet(fleet):
        assert row is not None and row["holder"] == "drop-a"
        assert ("u", "p") in fleet.projects()
        assert fleet.figures().leases_held == 1 and [j.name for j in fleet.jobs()] == ["fleet-leases"]
        assert fleet.previews_from_any_droplet and fleet.catches_up
    else:
        assert row is None and fleet.projects() == [] and fleet.jobs() == []
        assert fleet.figures() == FleetFigures()
        assert not fleet.previews_from_any_droplet and not fleet.catches_up


def test_the_live_alias_on_the_local_deployer_exists_only_in_a_fleet(fleet: Fleet) -> None:
    url = fleet.live_alias_url("alice", "site")
    assert url == ("http://site--alice.preview.test:8081/" if _in_fleet(fleet) else None)


def test_drain_stops_admission_in_a_fleet_and_is_refused_alone(fleet: Fleet) -> None:
    assert fleet.draining is False
    if not _in_fleet(fleet):
        with pytest.raises(Conflict) as refused:
            fleet.drain()
        assert refused.value.code == "not_in_fleet" and fleet.draining is False
        return
    out = fleet.drain()
    assert out["enabled"] is True and out["draining"] is True and fleet.draining is True
    with pytest.raises(Unavailable) as err:
        fleet.admit("u", "other")
    assert err.value.code == "draining"


def test_recover_with_nothing_interrupted_takes_nothing(fleet: Fleet) -> None:
    fleet.recover()
    assert fleet.projects() == []


def test_a_build_done_event_notes_activity_on_a_leased_project() -> None:
    keeper = SimpleNamespace(touched=[], is_idle=None)
    keeper.touch = lambda u, p: keeper.touched.append((u, p))  # type: ignore[attr-defined]
    events = Events()
    LeasedFleet(keeper, SimpleNamespace(), SimpleNamespace(), events,  # type: ignore[arg-type]
                preview_domain="preview.test", previews_port=8081)
    events.publish(BuildDone(ProjectVersion(version_id="V1", user_id="u", project_id="p")))
    assert keeper.touched == [("u", "p")]


def test_a_warming_droplet_admits_no_build_until_warm(fleet: Fleet) -> None:
    assert fleet.warming is False
    if not isinstance(fleet, LeasedFleet):
        return  # alone there is no fleet cache to warm from
    fleet.warm = SimpleNamespace(warming=True, status=lambda: {"state": "warming"})  # type: ignore[assignment]
    with pytest.raises(Unavailable) as err:
        fleet.admit("u", "p")
    assert err.value.code == "warming" and fleet.status()["warmStart"] == {"state": "warming"}
    fleet.warm.warming = False  # type: ignore[union-attr]
    assert fleet.admit("u", "p") is not None
