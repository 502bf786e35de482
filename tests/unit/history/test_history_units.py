"""Pure pieces of the history package: path rules, diff line counting, pack zip checks, the repo lock."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from daemon.history import HistoryError, ProjectRepo
from daemon.history.diffs import FileDiff, render
from daemon.history.locks import RepoLock, lock_for
from daemon.history.packing import PACK_FORMAT, read_zip
from daemon.history.trees import normalize_rel_dir, safe_rel_path


@pytest.mark.parametrize(
    ("rel", "want"), [("dist", "dist"), ("apps/web/dist", "apps/web/dist"), ("out/", "out"), ("./build", "build")]
)
def test_relative_dirs_are_normalised(rel: str, want: str) -> None:
    assert normalize_rel_dir(rel) == want


@pytest.mark.parametrize("rel", ["", "/abs", "../up", "a/../b", ".", "a\\b", "nul\0"])
def test_escaping_dirs_are_rejected(rel: str) -> None:
    with pytest.raises(HistoryError) as err:
        normalize_rel_dir(rel)
    assert err.value.code == "invalid_path"


@pytest.mark.parametrize("raw", [b"../x", b"a/../../x", b"/etc/passwd", b".git/config", b"a//b", b"", b"./x"])
def test_unsafe_tree_paths_are_refused(raw: bytes) -> None:
    with pytest.raises(HistoryError) as err:
        safe_rel_path(raw)
    assert err.value.code == "unsafe_path"


def test_safe_tree_path_is_decoded() -> None:
    assert safe_rel_path(b"src/app/main.ts") == "src/app/main.ts"


def test_counts_ignore_headers_even_when_content_looks_like_one() -> None:
    patch = (
        b"diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n"
        b"---- a line starting with dashes\n++++ b/also content\n keep\n"
    )
    assert FileDiff("x", "modified", patch, False).counts() == (1, 1)


def test_stat_shape_and_binary_counts_zero() -> None:
    diffs = [
        FileDiff("a.png", "added", b"diff --git a/a.png b/a.png\nBinary files /dev/null and b/a.png differ\n", True),
        FileDiff("b.ts", "modified", b"@@ -1 +1,2 @@\n-x\n+y\n+z\n", False),
    ]
    assert render(iter(diffs), "stat") == {
        "files": [
            {"path": "a.png", "change": "added", "insertions": 0, "deletions": 0, "binary": True},
            {"path": "b.ts", "change": "modified", "insertions": 2, "deletions": 1, "binary": False},
        ],
        "filesChanged": 2,
        "insertions": 2,
        "deletions": 1,
    }
    assert render(iter(diffs), "files") == [
        {"path": "a.png", "change": "added"},
        {"path": "b.ts", "change": "modified"},
    ]


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"not a zip",
        _zip({"objects.pack": b"x"}),
        _zip({"manifest.json": b"{", "objects.pack": b"", "objects.idx": b""}),
        _zip({"manifest.json": json.dumps({"format": "other"}).encode(), "objects.pack": b"", "objects.idx": b""}),
        _zip(
            {
                "manifest.json": json.dumps({"format": PACK_FORMAT, "refs": {"refs/tags/V1": "zz"}}).encode(),
                "objects.pack": b"",
                "objects.idx": b"",
            }
        ),
        _zip(
            {
                "manifest.json": json.dumps({"format": PACK_FORMAT, "refs": {}, "pack_sha1": "00" * 20}).encode(),
                "objects.pack": b"PACK" + b"\0" * 40,
                "objects.idx": b"\1" * 60,
            }
        ),
    ],
)
def test_bad_pack_zips_are_corrupt_and_named(data: bytes) -> None:
    with pytest.raises(HistoryError) as err:
        read_zip("git_A_to_B.pack.zip", data)
    assert err.value.code == "corrupt_pack"
    assert "git_A_to_B.pack.zip" in err.value.message


def test_history_error_carries_code_message_and_detail() -> None:
    err = HistoryError("missing_pack", "pack p is missing", pack="p")
    assert (err.code, err.message, err.detail) == ("missing_pack", "pack p is missing", {"pack": "p"})
    assert str(err) == "missing_pack: pack p is missing"
    assert HistoryError("unknown_version").message == "unknown version"


def test_lock_is_shared_per_real_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "r")
    assert lock_for(tmp_path / "r") is lock_for(tmp_path / "alias")
    assert lock_for(tmp_path / "r") is not lock_for(tmp_path / "other")


def test_exclusive_waits_for_readers_and_blocks_new_ones() -> None:
    lock = RepoLock()
    reader_in, release_reader = threading.Event(), threading.Event()
    pruned = threading.Event()
    order: list[str] = []

    def reader() -> None:
        with lock.shared():
            reader_in.set()
            release_reader.wait()
            order.append("reader done")

    def pruner() -> None:
        with lock.exclusive():
            order.append("prune")
            pruned.set()

    r = threading.Thread(target=reader)
    r.start()
    reader_in.wait()
    p = threading.Thread(target=pruner)
    p.start()
    # the pruner cannot get in while the reader holds the lock, however long we wait
    assert not pruned.wait(0.2)
    release_reader.set()
    r.join()
    p.join()
    assert order == ["reader done", "prune"]
    with lock.shared():  # and the lock is usable again afterwards
        pass


def test_writers_serialise_but_do_not_block_readers() -> None:
    lock = RepoLock()
    with lock.writing():
        got = threading.Event()

        def read() -> None:
            with lock.shared():
                got.set()

        t = threading.Thread(target=read)
        t.start()
        t.join()
        assert got.is_set()
        # another writer thread cannot get in while this one holds the lock (it is re-entrant for this one only)
        other: list[bool] = []
        w = threading.Thread(target=lambda: other.append(lock._writer.acquire(blocking=False)))
        w.start()
        w.join()
        assert other == [False]
        assert lock._writer.acquire(blocking=False)  # re-entrant: the holder may nest writes
        lock._writer.release()


def test_an_interrupted_init_leaves_no_half_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon killed while creating a project's repo must not wedge the project (the next open must work)."""
    path = tmp_path / "u" / "p" / "repo.git"

    def die(_path: Path) -> None:
        raise KeyboardInterrupt  # stands in for the process dying between init and the first ref

    monkeypatch.setattr(ProjectRepo, "_init_refs", staticmethod(die))
    with pytest.raises(KeyboardInterrupt):
        ProjectRepo.open_or_init(path)
    assert not path.exists()
    monkeypatch.undo()
    (path.parent / ".repo.git.init-leftover").mkdir()  # what a SIGKILL mid-init leaves: only a temp dir
    repo = ProjectRepo.open_or_init(path)
    assert (repo.path / "HEAD").is_file() and not repo.versions()
