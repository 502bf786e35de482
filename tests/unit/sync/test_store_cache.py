"""The shared store cache (sync/storecache.py) over the local object store and a pnpm-shaped store made here: what
publish shares, what import refuses, and how the hot set fits a budget. The real pnpm, S3 and registry path is
tests/drills/test_warm_start.py."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from daemon.fleet.warmstart import WarmStart
from sync.objects.local import LocalObjectStore
from sync.storecache import Package, StoreCache, StoreLayout, lockfile_packages

LOCK = """lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      left:
        specifier: 1.0.0
        version: 1.0.0

packages:

  '@scope/left@1.0.0':
    resolution: {integrity: INTEGRITY_A}

  right@2.0.0-beta.1:
    resolution: {integrity: INTEGRITY_B}
    engines: {node: '>=18'}

  gitdep@1.0.0:
    resolution: {tarball: https://example.invalid/gitdep.tgz}

snapshots:

  right@2.0.0-beta.1: {}
"""


def _integrity(raw: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode()


def _put_package(store: Path, name: str, version: str, files: dict[str, bytes]) -> Package:
    """A package as pnpm 10 stores it: content files named by their sha512, an index under the tarball's."""
    pkg = Package(name, version, _integrity(f"tarball of {name}@{version}".encode()))
    layout = StoreLayout(store)
    entries = {}
    for rel, data in files.items():
        path = layout.file_path(hashlib.sha512(data).hexdigest(), rel.endswith(".sh"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries[rel] = {"checkedAt": 1, "integrity": _integrity(data), "mode": 0o755 if rel.endswith(".sh") else 0o644,
                        "size": len(data)}
    index = layout.index_path(pkg)
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(json.dumps({"name": name, "version": version, "requiresBuild": False, "files": entries}))
    return pkg


def _rewrite_bundle(cache: StoreCache, pkg: Package, tmp: Path, change: dict[str, bytes]) -> None:
    """Replace members of a package's bundle in the bucket (a poisoned object)."""
    key = cache.bundle_key(pkg)
    cache.objects.get_file(key, tmp / "old.tar")
    with tarfile.open(tmp / "old.tar") as old, tarfile.open(tmp / "new.tar", "w") as new:
        for m in old:
            f = old.extractfile(m)
            assert f is not None
            data = change.get(m.name, f.read())
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    cache.objects.put_file(key, tmp / "new.tar")


@pytest.fixture
def two(tmp_path: Path) -> tuple[StoreCache, StoreCache, Package, Package]:
    bucket = LocalObjectStore(tmp_path / "bucket")
    (tmp_path / "s1").mkdir()
    (tmp_path / "s2").mkdir()
    a = StoreCache(bucket, tmp_path / "store-a", tmp_path / "s1", "a")
    b = StoreCache(bucket, tmp_path / "store-b", tmp_path / "s2", "b")
    left = _put_package(tmp_path / "store-a", "@scope/left", "1.0.0", {"index.js": b"left", "bin/run.sh": b"#!/bin/sh"})
    right = _put_package(tmp_path / "store-a", "right", "2.0.0", {"index.js": b"right" * 100})
    return a, b, left, right


def test_the_lockfile_gives_registry_packages_with_their_integrity() -> None:
    got = lockfile_packages(LOCK.replace("INTEGRITY_A", _integrity(b"a")).replace("INTEGRITY_B", _integrity(b"b")))
    assert got == [Package("@scope/left", "1.0.0", _integrity(b"a")),
                   Package("right", "2.0.0-beta.1", _integrity(b"b"))]


def test_published_packages_are_imported_byte_for_byte_by_another_droplet(two: tuple) -> None:
    a, b, left, right = two
    rep = a.publish([left, right])
    assert sorted(rep.done) == ["@scope/left@1.0.0", "right@2.0.0"] and not rep.refused
    assert a.publish([left]).present == ["@scope/left@1.0.0"]  # immutable: never uploaded twice
    hot, over = b.hot_set(10**9)
    assert [h.package for h in hot] == [left, right] and over == 0  # left used twice: first
    imported = b.import_packages([left, right], {left.pkg_id: left.integrity, right.pkg_id: right.integrity})
    assert sorted(imported.done) == ["@scope/left@1.0.0", "right@2.0.0"] and not imported.refused
    index = b.local.index_path(left)
    assert index.name.endswith("-@scope+left@1.0.0.json")
    exe = b.local.file_path(hashlib.sha512(b"#!/bin/sh").hexdigest(), True)
    assert exe.read_bytes() == b"#!/bin/sh" and exe.stat().st_mode & 0o111
    assert b.import_packages([left], {left.pkg_id: left.integrity}).present == ["@scope/left@1.0.0"]


def test_a_bundle_file_that_does_not_match_its_name_is_refused(two: tuple, tmp_path: Path) -> None:
    a, b, left, _right = two
    a.publish([left])
    name = hashlib.sha512(b"left").hexdigest()
    _rewrite_bundle(a, left, tmp_path, {name: b"evil"})
    rep = b.import_packages([left], {left.pkg_id: left.integrity})
    assert "sha512 name" in rep.refused["@scope/left@1.0.0"] and not b.local.index_path(left).exists()


def test_a_poisoned_file_refuses_the_whole_package(two: tuple, tmp_path: Path) -> None:
    a, b, left, right = two
    a.publish([left, right])
    _rewrite_bundle(a, right, tmp_path, {hashlib.sha512(b"right" * 100).hexdigest(): b"owned"})
    rep = b.import_packages([left, right], {left.pkg_id: left.integrity, right.pkg_id: right.integrity})
    assert rep.done == ["@scope/left@1.0.0"] and "do not match" in rep.refused["right@2.0.0"]
    assert not b.local.index_path(right).exists()
    assert not b.local.file_path(hashlib.sha512(b"right" * 100).hexdigest(), False).exists()


def test_an_integrity_the_registry_does_not_give_is_refused_unread(two: tuple) -> None:
    a, b, left, right = two
    a.publish([left])
    rep = b.import_packages([left, right], {left.pkg_id: _integrity(b"the registry's"), right.pkg_id: right.integrity})
    assert set(rep.refused) == {"@scope/left@1.0.0", "right@2.0.0"}  # right: not in the bucket at all
    assert "registry" in rep.refused["@scope/left@1.0.0"] and not b.local.index_path(left).exists()


def test_an_index_describing_another_package_is_refused(two: tuple, tmp_path: Path) -> None:
    a, b, left, right = two
    a.publish([left, right])
    a.objects.get_file(a.bundle_key(right), tmp_path / "right.tar")
    a.objects.put_file(a.bundle_key(left), tmp_path / "right.tar")  # right's files filed under left's integrity
    rep = b.import_packages([left], {left.pkg_id: left.integrity})
    assert "does not describe" in rep.refused["@scope/left@1.0.0"]


def test_a_store_file_changed_behind_pnpm_is_never_published(two: tuple) -> None:
    a, _b, left, right = two
    a.local.file_path(hashlib.sha512(b"right" * 100).hexdigest(), False).write_bytes(b"written through a link")
    rep = a.publish([left, right])
    assert rep.done == ["@scope/left@1.0.0"] and "not shared" in rep.refused["right@2.0.0"]
    assert not a.objects.exists(a.bundle_key(right))


def test_the_hot_set_fits_the_budget_most_used_first(two: tuple) -> None:
    a, b, left, right = two
    a.publish([right])
    a.publish([right, left])
    hot, over = b.hot_set(600)  # right (500 bytes, 2 uses) fits; left (13 bytes) too
    assert [h.package.name for h in hot] == ["right", "@scope/left"] and over == 0
    hot, over = b.hot_set(100)
    assert [h.package.name for h in hot] == ["@scope/left"] and over == 1


def test_warming_refuses_admission_until_warm_or_timed_out(two: tuple) -> None:
    a, b, left, right = two
    a.publish([left, right])
    asked: list[list[Package]] = []

    def registry(pkgs: list[Package]) -> dict[str, str]:
        asked.append(pkgs)
        return {p.pkg_id: p.integrity for p in pkgs}

    warm = WarmStart(b, resolve=registry, budget_bytes=10**9, timeout_s=300)
    assert warm.warming  # before the job runs: not yet routable
    warm.warm()
    assert not warm.warming and warm.status()["state"] == "warm" and warm.status()["done"] == 2
    again = WarmStart(b, resolve=registry, budget_bytes=10**9, timeout_s=300)
    again.warm()  # a restart: nothing missing, the registry is not asked
    assert len(asked) == 1 and again.status()["missing"] == 0
    stuck = WarmStart(b, resolve=registry, budget_bytes=10**9, timeout_s=0)
    stuck.state, stuck.started_at = "warming", 0.0
    assert not stuck.warming and stuck.status()["state"] == "timed_out"
