"""The dist window: output committed per version, only the latest 3 kept, old output leaving the disk."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from daemon.history import HistoryError
from tests.integration.history.history_support import Repos, git, write_files

OUTPUT_BYTES = 1_500_000


def _build(workspace: Path, n: int) -> bytes:
    """Pretend to build: fresh random (incompressible) output plus a small html file."""
    blob = os.urandom(OUTPUT_BYTES)
    write_files(workspace, {"dist/assets/app.bin": blob, "dist/index.html": f"<p>build {n}</p>\n"})
    return blob


def test_window_slides_and_prune_shrinks_the_repo(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    repo = repos.new()
    ids = [f"V{i}" for i in range(1, 7)]
    outputs: dict[str, bytes] = {}
    sizes_after_prune = []
    parent = None
    for n, vid in enumerate(ids, 1):
        write_files(workspace, {"src/main.ts": f"console.log({n})\n"})
        repo.snapshot(workspace, vid, parent, f"edit {n}", exclude_dirs=["dist"])
        outputs[vid] = _build(workspace, n)
        repo.snapshot_dist(workspace, vid, "dist")
        keep = ids[max(0, n - 3) : n]
        removed = repo.slide_dist_window(keep)
        assert removed == ([ids[n - 4]] if n > 3 else [])
        before = repo.size_bytes()
        freed = repo.prune()
        after = repo.size_bytes()
        assert freed == max(0, before - after)
        if n > 3:
            assert freed > OUTPUT_BYTES  # one whole output left the disk
        sizes_after_prune.append(after)
        parent = vid

    assert repo.dist_versions() == ["V4", "V5", "V6"]
    # three outputs stay, the other three are gone: the repo holds about 3 outputs, never 6
    assert 3 * OUTPUT_BYTES < sizes_after_prune[-1] < 4 * OUTPUT_BYTES
    assert sizes_after_prune[-1] < sizes_after_prune[2] + OUTPUT_BYTES // 2
    # the blobs of old outputs are really gone from the object store, the kept ones are there
    for vid, blob in outputs.items():
        path = tmp_path / f"{vid}.bin"
        path.write_bytes(blob)
        sha = git(repo.path, "hash-object", str(path)).strip()
        assert _exists(repo.path, sha) == (vid in {"V4", "V5", "V6"}), vid
    # sources of every version survive the prune
    assert sorted(repo.versions()) == ids
    assert repo.files("V1")["src/main.ts"] == b"console.log(1)\n"

    dest = tmp_path / "co-v6"
    repo.checkout("V6", dest, dist=True)
    assert (dest / "dist/assets/app.bin").read_bytes() == outputs["V6"]
    assert (dest / "src/main.ts").read_text() == "console.log(6)\n"
    with pytest.raises(HistoryError) as err:
        repo.checkout("V2", tmp_path / "co-v2", dist=True)
    assert err.value.code == "no_dist"


def _exists(repo: Path, sha: str) -> bool:
    return subprocess.run(["git", "--git-dir", str(repo), "cat-file", "-e", sha], capture_output=True).returncode == 0


def test_dist_tree_is_the_version_sources_plus_output(repos: Repos, workspace: Path) -> None:
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first", exclude_dirs=["dist"])
    write_files(workspace, {"dist/index.html": "<built/>\n", "src/main.ts": "changed after snapshot\n"})
    repo.snapshot_dist(workspace, "V1", "dist")
    names = set(git(repo.path, "ls-tree", "-r", "--name-only", "refs/dist/V1").split())
    assert names == set(repo.files("V1")) | {"dist/index.html"}
    # the source half is the snapshot, not whatever the workspace holds now
    assert git(repo.path, "show", "refs/dist/V1:src/main.ts") == repo.files("V1")["src/main.ts"].decode()
    assert git(repo.path, "rev-parse", "refs/dist/V1^").strip() == repo.commit_sha("V1")
