"""The budget's pieces: the pack scanner (sizes from headers, inflation counted in chunks), the source door's rules
and the file-set snapshot."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from daemon.history import HistoryError, ProjectRepo
from daemon.history.budget import Budget, scan_pack
from daemon.history.trees import refused_source


def _pack(entries: list[tuple[int, int, bytes]]) -> bytes:
    """A pack of (type, declared size, raw body) entries, each body zlib-compressed."""
    out = bytearray(b"PACK" + struct.pack(">II", 2, len(entries)))
    for type_num, size, body in entries:
        c = (type_num << 4) | (size & 15)
        size >>= 4
        head = bytearray()
        while size:
            head.append(c | 0x80)
            c = size & 0x7F
            size >>= 7
        head.append(c)
        out += head + zlib.compress(body)
    out += hashlib.sha1(out).digest()
    return bytes(out)


def test_a_pack_within_budget_scans_and_counts() -> None:
    meter = Budget().meter("restore")
    scan_pack("p", _pack([(3, 5, b"hello"), (3, 3000, b"x" * 3000)]), meter)
    assert (meter.bytes, meter.objects) == (3005, 2)


def test_a_header_that_lies_about_its_size_is_a_corrupt_pack() -> None:
    big = b"\0" * (1 << 20)
    with pytest.raises(HistoryError) as err:
        scan_pack("p", _pack([(3, 10, big)]), Budget().meter("restore"))
    assert err.value.code == "corrupt_pack" and "inflates past" in err.value.message


def test_an_object_over_the_cap_is_refused_from_its_header() -> None:
    budget = Budget(max_object_bytes=1000)
    with pytest.raises(HistoryError) as err:
        scan_pack("p", _pack([(3, 1001, b"y" * 1001)]), budget.meter("restore"))
    assert err.value.code == "history_limit" and "1001 bytes" in err.value.message


def test_too_many_objects_are_refused_from_the_pack_header() -> None:
    with pytest.raises(HistoryError) as err:
        scan_pack("p", _pack([(3, 1, b"z")] * 4), Budget(max_objects=3).meter("restore"))
    assert err.value.code == "history_limit" and "objects" in err.value.message


def test_a_delta_is_charged_its_target_size() -> None:
    # ref delta: base 20 bytes of sha, then the delta body: base size 5, target size 4000 (varints)
    delta = bytes([5]) + bytes([0x80 | (4000 & 0x7F), 4000 >> 7]) + b"\x00"
    raw = _pack([(3, 5, b"hello")])[:-20]
    entry = bytearray([(7 << 4) | len(delta)]) + b"\x11" * 20 + zlib.compress(delta)
    pack = bytearray(raw[:8] + struct.pack(">I", 2) + raw[12:]) + entry
    pack += hashlib.sha1(pack).digest()
    with pytest.raises(HistoryError) as err:
        scan_pack("p", bytes(pack), Budget(max_object_bytes=3999).meter("restore"))
    assert err.value.code == "history_limit" and "4000 bytes" in err.value.message


@pytest.mark.parametrize("path", [
    ".npmrc", "src/.npmrc", "a/b/c/.NPMRC", "packages/x/.pnpmfile.cjs", ".pnpmfile.mjs", "apps/web/pnpm-lock.yaml",
    "apps/web/pnpm-workspace.yaml", "node_modules/x/index.js", "src/node_modules/y", ".git/config", ".gitignore",
    "a/.pnpm-store/v3", "pnpm-cache/x", "../up", "/abs",
])
def test_reserved_and_daemon_owned_names_are_refused_at_every_depth(path: str) -> None:
    assert refused_source(path) is not None


@pytest.mark.parametrize("path", ["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", "src/npmrc.ts",
                                  "apps/web/package.json", "docs/.npmrc.md"])
def test_project_files_and_the_daemons_root_files_pass(path: str) -> None:
    assert refused_source(path) is None


def test_the_snapshot_holds_the_file_set_and_nothing_reserved(tmp_path: Path) -> None:
    repo = ProjectRepo.open_or_init(tmp_path / "r.git")
    files = {"package.json": "{}", "pnpm-lock.yaml": "lockfileVersion: '9.0'\n", "src/a.ts": "x",
             "src/.npmrc": "registry=http://evil", "dist/index.html": "old output", ".gitignore": "dist\n"}
    sha, refused = repo.snapshot_files(dict(files), "v1", None, "m", exclude_dirs=("dist",))
    assert refused == ["src/.npmrc"]
    assert repo.files("v1") == {"package.json": b"{}", "pnpm-lock.yaml": b"lockfileVersion: '9.0'\n",
                                "src/a.ts": b"x"}
    assert repo.commit_sha("v1") == sha


def test_a_file_set_over_the_sources_budget_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    repo = ProjectRepo.open_or_init(tmp_path / "r.git")
    with pytest.raises(HistoryError) as err:
        repo.snapshot_files({"a": "x" * 11, "b": "y"}, "v1", None, "m", budget=Budget(max_object_bytes=10))
    assert err.value.code == "history_limit" and not repo.has_version("v1")


def test_a_rollback_commit_reuses_the_target_tree(tmp_path: Path) -> None:
    repo = ProjectRepo.open_or_init(tmp_path / "r.git")
    repo.snapshot_files({"a.txt": "a"}, "v1", None, "m")
    repo.tag_tree("v1", "v2", "rollback to v1")
    assert repo.files("v2") == {"a.txt": b"a"}
    assert repo.versions().keys() == {"v1", "v2"}


def test_past_its_seconds_a_prune_stops_and_changes_nothing(tmp_path: Path) -> None:
    repo = ProjectRepo.open_or_init(tmp_path / "r.git")
    repo.snapshot_files({"a.txt": "a"}, "v1", None, "m")
    before = sorted(p.name for p in (repo.path / "objects").rglob("*") if p.is_file())
    with pytest.raises(HistoryError) as err:
        repo.prune(budget=Budget(max_seconds=0))
    assert err.value.code == "history_limit" and "ran past 0 s" in err.value.message
    assert sorted(p.name for p in (repo.path / "objects").rglob("*") if p.is_file()) == before
    assert repo.prune() >= 0 and repo.files("v1") == {"a.txt": b"a"}


def test_object_sizes_are_read_from_headers_loose_packed_and_deltified(tmp_path: Path) -> None:
    from dulwich.repo import Repo

    from daemon.history.budget import object_size

    repo = ProjectRepo.open_or_init(tmp_path / "r.git")
    text = "".join(f"line {i} of a source file that changes a little\n" for i in range(3000))
    repo.snapshot_files({"a.txt": text, "b.bin": "\0" * 70000}, "v1", None, "m")
    repo.snapshot_files({"a.txt": text + "one more line\n", "b.bin": "\0" * 70000}, "v2", "v1", "m")
    repo.prune()  # one pack, the second a.txt stored as a delta of the first
    with Repo(str(repo.path)) as r:
        store = r.object_store
        deltas = 0
        for sha in store:
            obj = store[sha]
            assert object_size(store, sha) == obj.raw_length(), obj.type_name
            unpacked = store.get_unpacked_object(sha)
            deltas += unpacked.pack_type_num in (6, 7)
        assert deltas >= 1  # the delta path was exercised


def test_file_sizes_list_a_version_without_reading_it(tmp_path: Path) -> None:
    repo = ProjectRepo.open_or_init(tmp_path / "r.git")
    repo.snapshot_files({"b/c.txt": "hello", "a.txt": "x" * 3000}, "v1", None, "m")
    assert repo.file_sizes("v1") == [("a.txt", 3000), ("b/c.txt", 5)]


def test_a_big_entry_that_compresses_well_is_inflated_in_chunks_to_its_end() -> None:
    meter = Budget().meter("restore")
    scan_pack("p", _pack([(3, 5 * 2**20, bytes(5 * 2**20)), (3, 2, b"ok")]), meter)
    assert (meter.bytes, meter.objects) == (5 * 2**20 + 2, 2)


def test_a_pack_cut_short_is_a_corrupt_pack() -> None:
    whole = _pack([(3, 3000, b"x" * 3000)])
    with pytest.raises(HistoryError) as err:
        scan_pack("p", whole[:20] + whole[-20:], Budget().meter("restore"))
    assert err.value.code == "corrupt_pack"
