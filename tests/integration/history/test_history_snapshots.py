"""Snapshots: what gets committed, the DAG of versions, tags readable by git, errors on bad ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.history import HistoryError, ProjectRepo
from tests.integration.history.history_support import Repos, git, write_files


def test_rebuild_from_older_base_is_a_branch_in_git_log(repos: Repos, workspace: Path) -> None:
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first")
    write_files(workspace, {"src/main.ts": "console.log(2)\n"})
    v2 = repo.snapshot(workspace, "V2", "V1", "second")
    write_files(workspace, {"src/main.ts": "console.log(3)\n"})
    v3 = repo.snapshot(workspace, "V3", "V2", "third")
    write_files(workspace, {"src/main.ts": "console.log('from v2')\n"})
    v4 = repo.snapshot(workspace, "V4", "V2", "rebuilt from v2")

    assert git(repo.path, "rev-parse", "V4^").strip() == v2
    assert git(repo.path, "rev-parse", "V3^").strip() == v2
    graph = git(repo.path, "log", "--graph", "--all", "--format=%s").splitlines()
    # two tips side by side, then the fork point joins them
    assert any(line.startswith("| * ") or line.startswith("* | ") for line in graph), graph
    assert any("|/" in line for line in graph), graph
    assert git(repo.path, "show", "--format=%an <%ae>|%s", "-s", "V4").strip() == (
        "previewd <previewd@localhost>|rebuilt from v2"
    )
    assert repo.versions() == {"V1": repo.commit_sha("V1"), "V2": v2, "V3": v3, "V4": v4}
    assert git(repo.path, "show", "V4:src/main.ts") == "console.log('from v2')\n"


def test_snapshot_skips_node_modules_git_symlinks_and_excluded_dirs(repos: Repos, workspace: Path) -> None:
    write_files(
        workspace,
        {
            "node_modules/react/index.js": "module.exports = 1\n",
            "src/node_modules/nested.js": "x\n",
            ".git/config": "[core]\n",
            ".gitignore": "node_modules\n",
            "dist/index.html": "<built/>\n",
            "apps/web/dist/x.js": "built\n",
            "apps/web/src/y.ts": "kept\n",
            "scripts/run.sh": "#!/bin/sh\necho hi\n",
        },
    )
    os.chmod(workspace / "scripts/run.sh", 0o755)
    os.symlink("/etc/passwd", workspace / "src/passwd")
    os.symlink("/etc", workspace / "etc-link")
    os.symlink(workspace / "src", workspace / "src-link")
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first", exclude_dirs=["dist", "apps/web/dist"])

    names = set(git(repo.path, "ls-tree", "-r", "--name-only", "V1").split())
    assert names == {
        "package.json",
        "pnpm-lock.yaml",
        "index.html",
        "src/main.ts",
        "src/style.css",
        "apps/web/src/y.ts",
        "scripts/run.sh",
    }
    modes = dict((line.split("\t")[1], line.split()[0]) for line in git(repo.path, "ls-tree", "-r", "V1").splitlines())
    assert modes["scripts/run.sh"] == "100755"
    assert modes["src/main.ts"] == "100644"
    assert set(repo.files("V1")) == names
    assert b"root:" not in b"".join(repo.files("V1").values())


def test_checkout_sources_and_refuses_a_non_empty_destination(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    write_files(workspace, {"bin/start.sh": "#!/bin/sh\n"})
    os.chmod(workspace / "bin/start.sh", 0o755)
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first")
    dest = tmp_path / "out" / "v1"
    repo.checkout("V1", dest)
    got = {str(p.relative_to(dest)): p.read_text() for p in dest.rglob("*") if p.is_file()}
    assert got == {k: v.decode() for k, v in repo.files("V1").items()}
    assert os.access(dest / "bin/start.sh", os.X_OK) and not os.access(dest / "src/main.ts", os.X_OK)

    with pytest.raises(HistoryError) as err:
        repo.checkout("V1", dest)
    assert err.value.code == "dest_not_empty"
    with pytest.raises(HistoryError) as err:
        repo.checkout("V1", tmp_path / "nodist", dist=True)
    assert err.value.code == "no_dist"
    assert not (tmp_path / "nodist").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["v1"]  # no temp dir left beside it


@pytest.mark.parametrize("call", ["files", "diff", "checkout", "parent", "export", "dist"])
def test_unknown_version_is_a_clear_error(repos: Repos, workspace: Path, tmp_path: Path, call: str) -> None:
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first")
    (workspace / "dist").mkdir()
    actions = {
        "files": lambda: repo.files("NOPE"),
        "diff": lambda: repo.diff("V1", "NOPE", "files"),
        "checkout": lambda: repo.checkout("NOPE", tmp_path / "co"),
        "parent": lambda: repo.snapshot(workspace, "V2", "NOPE", "x"),
        "export": lambda: repo.export_pack("NOPE", "V1"),
        "dist": lambda: repo.snapshot_dist(workspace, "NOPE", "dist"),
    }
    with pytest.raises(HistoryError) as err:
        actions[call]()
    assert err.value.code == "unknown_version"
    assert "NOPE" in str(err.value)
    assert not repo.has_version("V2")
    assert not (tmp_path / "co").exists()


def test_bad_ids_paths_and_duplicates_are_rejected(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first")
    for bad in ["", "../x", "a/b", "v 1", "x" * 65, "-lead"]:
        with pytest.raises(HistoryError) as err:
            repo.snapshot(workspace, bad, None, "x")
        assert err.value.code == "invalid_version_id"
    with pytest.raises(HistoryError) as err:
        repo.snapshot(workspace, "V1", None, "again")
    assert err.value.code == "version_exists"
    with pytest.raises(HistoryError) as err:
        repo.snapshot_dist(workspace, "V1", "../etc")
    assert err.value.code == "invalid_path"
    with pytest.raises(HistoryError) as err:
        repo.snapshot_dist(workspace, "V1", "dist")  # never built
    assert err.value.code == "no_output"
    with pytest.raises(HistoryError) as err:
        repo.diff("V1", "V1", "everything")  # type: ignore[arg-type]
    assert err.value.code == "invalid_mode"
    with pytest.raises(HistoryError) as err:
        ProjectRepo(tmp_path / "nowhere")
    assert err.value.code == "not_a_repo"
    with pytest.raises(HistoryError) as err:
        repo.snapshot(tmp_path / "missing-ws", "V9", None, "x")
    assert err.value.code == "invalid_path"
    assert sorted(repo.versions()) == ["V1"]
