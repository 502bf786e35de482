"""materialize writes exactly a file set (never through a symlink, never outside dest); read_tree reads it back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.project.workspace import WorkspaceError, materialize, read_tree


def _tree(root: Path) -> dict[str, str]:
    """Every file and symlink under root (symlinks shown as '-> target'), not following links."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else p.read_text()
    return out


def test_writes_exact_set_into_a_new_dir(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "ws"
    materialize(dest, {"index.html": "<h1>hi</h1>", "src/deep/x.ts": "x", "bin.dat": b"\x00\x01"})
    assert (dest / "bin.dat").read_bytes() == b"\x00\x01"
    assert _tree(dest) == {"index.html": "<h1>hi</h1>", "src/deep/x.ts": "x", "bin.dat": "\x00\x01"}


def test_removes_unlisted_files_and_dirs_but_keeps_node_modules_and_git(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    materialize(dest, {"a.ts": "1", "old/x.ts": "2", "src/b.ts": "3", "src/c.ts": "4"})
    (dest / "node_modules" / "react").mkdir(parents=True)
    (dest / "node_modules" / "react" / "index.js").write_text("react")
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "dist").mkdir()
    (dest / "dist" / "index.html").write_text("built")
    materialize(dest, {"a.ts": "1", "src/b.ts": "changed"})
    assert _tree(dest) == {
        "a.ts": "1",
        "src/b.ts": "changed",
        "node_modules/react/index.js": "react",
        ".git/HEAD": "ref: refs/heads/main\n",
    }
    assert not (dest / "old").exists()


def test_custom_keep_list(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    (dest / "cache").mkdir(parents=True)
    (dest / "cache" / "x").write_text("x")
    (dest / "node_modules").mkdir()
    materialize(dest, {"a": "1"}, keep=("cache",))
    assert (dest / "cache" / "x").read_text() == "x"
    assert not (dest / "node_modules").exists()


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    materialize(dest, {"same.ts": "same", "diff.ts": "one"})
    same, diff = os.stat(dest / "same.ts"), os.stat(dest / "diff.ts")
    materialize(dest, {"same.ts": "same", "diff.ts": "two"})
    assert os.stat(dest / "same.ts").st_ino == same.st_ino
    assert os.stat(dest / "same.ts").st_mtime_ns == same.st_mtime_ns
    assert os.stat(dest / "diff.ts").st_ino != diff.st_ino  # replaced via a temp file, not edited in place
    assert (dest / "diff.ts").read_text() == "two"


def test_symlinked_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    dest, outside = tmp_path / "ws", tmp_path / "secret.txt"
    outside.write_text("secret")
    dest.mkdir()
    (dest / "index.html").symlink_to(outside)
    materialize(dest, {"index.html": "page"})
    assert outside.read_text() == "secret"
    assert not (dest / "index.html").is_symlink()
    assert (dest / "index.html").read_text() == "page"


def test_symlinked_dir_is_replaced_not_followed(tmp_path: Path) -> None:
    dest, outside = tmp_path / "ws", tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    dest.mkdir()
    (dest / "src").symlink_to(outside, target_is_directory=True)
    materialize(dest, {"src/main.ts": "main"})
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert not (dest / "src").is_symlink()
    assert _tree(dest) == {"src/main.ts": "main"}


def test_unlisted_symlinks_are_removed_and_targets_survive(tmp_path: Path) -> None:
    dest, outside = tmp_path / "ws", tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f.txt").write_text("f")
    dest.mkdir()
    (dest / "dist").symlink_to(outside, target_is_directory=True)
    (dest / "link.txt").symlink_to(outside / "f.txt")
    (dest / "dangling").symlink_to(tmp_path / "nowhere")
    materialize(dest, {"a.ts": "a"})
    assert _tree(dest) == {"a.ts": "a"}
    assert (outside / "f.txt").read_text() == "f"


def test_dest_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "ws").symlink_to(real, target_is_directory=True)
    with pytest.raises(WorkspaceError):
        materialize(tmp_path / "ws", {"a": "1"})
    assert list(real.iterdir()) == []


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../x", "", "a//b", "./a", "a\\..\\b",
                                  "a\x00b", "node_modules/evil.js", ".git/config"])
def test_escaping_or_kept_paths_are_refused_before_anything_is_written(tmp_path: Path, path: str) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(WorkspaceError) as info:
        materialize(dest, {"new.txt": "new", path: "evil"})
    assert info.value.code == "invalid_output"
    assert _tree(dest) == {"old.txt": "old"}
    assert not (tmp_path / "escape.txt").exists()


def test_file_and_dir_on_the_same_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="both a file and a directory"):
        materialize(tmp_path / "ws", {"a": "1", "a/b": "2"})


def test_dir_becomes_file_and_file_becomes_dir(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    materialize(dest, {"a/x.ts": "x", "b": "file"})
    materialize(dest, {"a": "now a file", "b/y.ts": "now in a dir"})
    assert _tree(dest) == {"a": "now a file", "b/y.ts": "now in a dir"}


def test_leftover_temp_files_are_cleaned(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / ".previewd-tmp-123-a.ts").write_text("half")
    materialize(dest, {"a.ts": "a"})
    assert _tree(dest) == {"a.ts": "a"}


def test_read_tree_returns_text_files_only(tmp_path: Path) -> None:
    src = tmp_path / "ws"
    materialize(src, {"package.json": "{}", "src/App.tsx": "app", "src/logo.png": b"\x89PNG\x00\x01",
                      "latin1.txt": "caf\xe9".encode("latin-1"), "dist/index.html": "built",
                      "src/big.ts": "x" * 50})
    (src / "node_modules" / "r").mkdir(parents=True)
    (src / "node_modules" / "r" / "i.js").write_text("r")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "link.ts").symlink_to(src / "package.json")
    assert read_tree(src, ["node_modules", "dist"]) == {"package.json": "{}", "src/App.tsx": "app",
                                                         "src/big.ts": "x" * 50}
    assert "src/big.ts" not in read_tree(src, ["node_modules", "dist"], max_file_bytes=10)
    assert "src/App.tsx" not in read_tree(src, ["src/*.tsx"])
    assert read_tree(tmp_path / "missing", []) == {}


def test_materialize_then_read_tree_round_trips(tmp_path: Path) -> None:
    files = {"a.ts": "a", "src/b/c.ts": "c", "README.md": "# r\n"}
    materialize(tmp_path / "ws", files)
    assert read_tree(tmp_path / "ws", ["node_modules"]) == files
