"""Previews from any droplet (issue 16): a deployment built elsewhere is fetched from the bucket, kept in a
size-bounded LRU, and a fast rollback is served through its target's artifact; unknown hosts stay 404."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.core.db import connect
from daemon.core.ids import new_version_id
from daemon.core.layout import Layout
from daemon.deployers.local import LocalDeployer
from daemon.deployers.previewnames import deployment_id_for
from daemon.fleet.single import SingleDroplet
from daemon.publish.previewfetch import PreviewResolver
from sync.objects.local import LocalObjectStore


class Replica:
    """Postgres as far as the resolver asks it: one record per version id."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def get_version(self, version_id: str) -> dict[str, Any] | None:
        return self.rows.get(version_id)


@pytest.fixture
def world(tmp_path: Path) -> SimpleNamespace:
    data = tmp_path / "data"
    layout = Layout.of(data)
    layout.create()
    connect(data)
    bucket = LocalObjectStore(tmp_path / "bucket")
    replica = Replica()
    deployer = LocalDeployer(layout.previews)
    rt = SimpleNamespace(layout=layout, deployer=deployer, remote_objects=bucket, replica=replica,
                         fleet=SingleDroplet(deployer), cfg=SimpleNamespace(limits=SimpleNamespace(output_mb=100)))

    def version(text: str, *, status: str = "deployed", rollback_of: str | None = None,
                artifact: bool = True, empty_files: int = 0) -> str:
        vid = new_version_id()
        replica.rows[vid] = {"version_id": vid, "user_id": "u", "project_id": "p", "status": status,
                             "rollback_of": rollback_of}
        if artifact:
            zpath = tmp_path / f"{vid}.zip"
            with zipfile.ZipFile(zpath, "w") as zf:
                zf.writestr("index.html", text)
                for i in range(empty_files):
                    zf.writestr(f"e/{i}", "")
            bucket.put_file(layout.artifact_key("u", "p", vid), zpath, "application/zip")
        return vid

    return SimpleNamespace(rt=rt, version=version, previews=layout.previews)


def test_fetched_previews_are_served_and_the_least_recently_used_leaves_past_the_cap(world: SimpleNamespace) -> None:
    resolver = PreviewResolver(world.rt, cap_bytes=2500)
    ids = [world.version("x" * 1000) for _ in range(3)]
    labels = [deployment_id_for("p", v) for v in ids]
    assert resolver(labels[0]) == labels[0] and resolver(labels[1]) == labels[1]
    assert (world.previews / labels[0] / "index.html").read_text() == "x" * 1000
    assert resolver(labels[0]) == labels[0]  # used again: now labels[1] is the least recently used
    assert resolver(labels[2]) == labels[2]
    assert not (world.previews / labels[1]).exists() and (world.previews / labels[0]).is_dir()
    assert resolver.fetches == 3 and resolver.evictions == 1


def test_previews_of_many_empty_files_are_evicted_by_their_file_count(world: SimpleNamespace) -> None:
    """Issue 24: bytes alone never evicted a preview of empty files; the file count does."""
    resolver = PreviewResolver(world.rt, cap_bytes=1 << 20, cap_files=250)
    ids = [world.version("<h1>empty</h1>", empty_files=100) for _ in range(3)]
    labels = [deployment_id_for("p", v) for v in ids]
    for label in labels:
        assert resolver(label) == label
    assert not (world.previews / labels[0]).exists()  # 3 x 101 files > 250: the oldest left, bytes far below
    assert (world.previews / labels[1]).is_dir() and (world.previews / labels[2]).is_dir()
    assert resolver.evictions == 1


def test_an_artifact_past_the_caps_is_never_unpacked(world: SimpleNamespace) -> None:
    world.rt.cfg.limits.output_mb = 1
    big = world.version("x" * (2 * 2**20))
    assert PreviewResolver(world.rt, cap_bytes=1 << 30)(deployment_id_for("p", big)) is None
    assert not any(p for p in world.previews.iterdir() if not p.name.startswith("."))


def test_a_fast_rollback_is_served_through_its_targets_artifact(world: SimpleNamespace) -> None:
    target = world.version("<h1>target</h1>")
    rollback = world.version("", rollback_of=target, artifact=False)
    label = deployment_id_for("p", rollback)
    assert PreviewResolver(world.rt, cap_bytes=1 << 20)(label) == label
    assert (world.previews / label / "index.html").read_text() == "<h1>target</h1>"


def test_unknown_undeployed_and_forged_labels_are_not_found(world: SimpleNamespace) -> None:
    resolver = PreviewResolver(world.rt, cap_bytes=1 << 20)
    failed = world.version("<h1>failed</h1>", status="failed")
    ok = world.version("<h1>ok</h1>")
    assert resolver(deployment_id_for("p", failed)) is None  # never deployed: never served
    assert resolver(deployment_id_for("other", ok)) is None  # the label must name the version's own project
    assert resolver("nothing-here") is None
    assert resolver(deployment_id_for("p", new_version_id())) is None
    assert resolver.fetches == 0 and not any(world.previews.iterdir())
