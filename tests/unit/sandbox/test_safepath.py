"""No-follow path resolution below a root: openat2 where the kernel has it, the O_NOFOLLOW walk everywhere."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import safepath


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test runs with openat2 and with the pure-Python O_NOFOLLOW walk."""
    if request.param == "openat2":
        if not safepath.openat2_available():
            pytest.fail("openat2 is expected on this kernel (Linux >= 5.6)")
    else:
        monkeypatch.setattr(safepath, "openat2_available", lambda: False)
    yield request.param


def test_ensure_dir_makes_real_dirs_and_refuses_a_link_on_the_way(tmp_path: Path, mode: str) -> None:
    assert safepath.ensure_dir(tmp_path, ["a", "b", "c"]) == tmp_path / "a" / "b" / "c"
    assert (tmp_path / "a" / "b" / "c").is_dir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "a" / "link").symlink_to(elsewhere)
    with pytest.raises(safepath.UnsafePath, match="refusing 'a/link' under"):
        safepath.ensure_dir(tmp_path, ["a", "link", "x"])
    assert list(elsewhere.iterdir()) == []  # nothing was made through the link


def test_check_dir_refuses_links_anywhere_below_the_root(tmp_path: Path, mode: str) -> None:
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "via").symlink_to(tmp_path / "real")
    assert safepath.check_dir(tmp_path, "real/inner") == tmp_path / "real" / "inner"
    for rel in ("via", "via/inner"):
        with pytest.raises(safepath.UnsafePath):
            safepath.check_dir(tmp_path, rel)
    with pytest.raises(FileNotFoundError):
        safepath.check_dir(tmp_path, "missing")


def test_read_regular_never_reads_a_link_a_fifo_or_too_much(tmp_path: Path, mode: str) -> None:
    (tmp_path / "f.json").write_text("{}")
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0")
    (tmp_path / "link.json").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo")
    assert safepath.read_regular(tmp_path, ["f.json"], 10) == b"{}"
    with pytest.raises(safepath.UnsafePath):
        safepath.read_regular(tmp_path, ["link.json"], 100)
    with pytest.raises(safepath.UnsafePath, match="not a regular file"):
        safepath.read_regular(tmp_path, ["fifo"], 100)  # O_NONBLOCK: returns instead of waiting for a writer
    with pytest.raises(ValueError, match="larger than 1 bytes"):
        safepath.read_regular(tmp_path, ["f.json"], 1)


def test_write_atomic_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path, mode: str) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("victim")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "out.json").symlink_to(target)
    safepath.write_atomic(tmp_path, ["d", "out.json"], b"new", 0o600)
    assert target.read_text() == "victim"
    out = tmp_path / "d" / "out.json"
    assert not out.is_symlink() and out.read_bytes() == b"new" and stat.S_IMODE(out.stat().st_mode) == 0o600
    (tmp_path / "up").symlink_to(tmp_path / "d")
    with pytest.raises(safepath.UnsafePath):
        safepath.write_atomic(tmp_path, ["up", "x"], b"x")


def test_remove_tree_removes_links_not_their_targets(tmp_path: Path, mode: str) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("kept")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "to-keep").symlink_to(keep)
    safepath.remove_tree(tmp_path, ["tree"])
    assert not tree.exists() and (keep / "file").read_text() == "kept"
    (tmp_path / "dirlink").symlink_to(keep)
    safepath.remove_tree(tmp_path, ["dirlink"])
    assert not os.path.lexists(tmp_path / "dirlink") and (keep / "file").exists()
    safepath.remove_tree(tmp_path, ["missing", "x"])  # missing is fine


@pytest.mark.parametrize("rel", ["/etc", "../x", "a/../b", "a//b", "", "a/./b"])
def test_bad_relative_paths_are_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(ValueError):
        safepath.ensure_dir(tmp_path, rel)


def test_walk_regular_lists_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"12345")
    (tmp_path / "a" / "l").symlink_to("/etc/passwd")
    (tmp_path / "d").symlink_to("/etc")
    os.mkfifo(tmp_path / "p")
    found = {rel: st.st_size for rel, st in safepath.walk_regular(tmp_path)}
    assert found == {"a/f": 5}
