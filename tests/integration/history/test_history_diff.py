"""Diffs between real versions in each mode, checked against the git CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daemon.history import ProjectRepo
from tests.integration.history.history_support import Repos, git, write_files

PNG_1 = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(64))
PNG_2 = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(64, 128))


@pytest.fixture
def two_versions(repos: Repos, workspace: Path) -> ProjectRepo:
    """V1 -> V2 with an added, a modified, a deleted, a binary-changed file and output-dir churn.

    The snapshots keep dist/ and build/ on purpose, so the diff's own exclusion is what is tested.
    """
    write_files(
        workspace,
        {
            "src/old.ts": "export const gone = true\n",
            "public/logo.png": PNG_1,
            "dist/index.html": "<p>v1</p>\n",
            "build/x.js": "1\n",
        },
    )
    repo = repos.new()
    repo.snapshot(workspace, "V1", None, "first")
    (workspace / "src/old.ts").unlink()
    write_files(
        workspace,
        {
            "src/new.ts": "export const added = 1\nexport const two = 2\n",
            "src/style.css": "body {\n  margin: 0;\n  color: #333;\n  padding: 1px;\n}\n",
            "public/logo.png": PNG_2,
            "public/icon.bin": b"\0\1\2\3",
            "dist/index.html": "<p>v2</p>\n",
            "build/x.js": "2\n",
        },
    )
    repo.snapshot(workspace, "V2", "V1", "second")
    return repo


def test_files_mode_matches_git_name_status(two_versions: ProjectRepo) -> None:
    repo = two_versions
    got = repo.diff("V1", "V2", "files")
    assert got == [
        {"path": "public/icon.bin", "change": "added"},
        {"path": "public/logo.png", "change": "modified"},
        {"path": "src/new.ts", "change": "added"},
        {"path": "src/old.ts", "change": "deleted"},
        {"path": "src/style.css", "change": "modified"},
    ]
    kinds = {"A": "added", "M": "modified", "D": "deleted"}
    out = git(repo.path, "diff", "--no-renames", "--name-status", "V1", "V2", "--", ".", ":!dist", ":!build")
    expected = [{"path": line.split("\t")[1], "change": kinds[line[0]]} for line in out.splitlines()]
    assert got == expected
    # without exclusions the output dirs show up
    everything = repo.diff("V1", "V2", "files", exclude_dirs=())
    assert isinstance(everything, list)
    assert {"path": "dist/index.html", "change": "modified"} in everything
    assert {"path": "build/x.js", "change": "modified"} in everything


def test_stat_mode_matches_git_numstat(two_versions: ProjectRepo) -> None:
    repo = two_versions
    stat = repo.diff("V1", "V2", "stat")
    assert isinstance(stat, dict)
    numstat = git(repo.path, "diff", "--no-renames", "--numstat", "V1", "V2", "--", ".", ":!dist", ":!build")
    expected = []
    for line in numstat.splitlines():
        ins, dels, path = line.split("\t")
        binary = ins == "-"
        expected.append((path, 0 if binary else int(ins), 0 if binary else int(dels), binary))
    got = [(f["path"], f["insertions"], f["deletions"], f["binary"]) for f in stat["files"]]
    assert got == expected
    assert stat["filesChanged"] == 5
    assert stat["insertions"] == sum(e[1] for e in expected) == 4
    assert stat["deletions"] == sum(e[2] for e in expected) == 2


def test_patch_mode_applies_with_git_and_marks_binaries(two_versions: ProjectRepo, tmp_path: Path) -> None:
    repo = two_versions
    patch = repo.diff("V1", "V2", "patch")
    assert isinstance(patch, str)
    assert "diff --git a/src/style.css b/src/style.css" in patch
    assert "Binary files a/public/logo.png and b/public/logo.png differ" in patch
    assert "Binary files /dev/null and b/public/icon.bin differ" in patch
    assert "PNG" not in patch and "dist/" not in patch and "build/" not in patch
    assert "+  padding: 1px;" in patch and "-  color: #222;" in patch

    # the text part of the patch turns V1's sources into V2's when git applies it
    text_only = "".join("diff --git" + chunk for chunk in patch.split("diff --git")[1:] if "Binary files" not in chunk)
    work = tmp_path / "apply"
    repo.checkout("V1", work)
    proc = subprocess.run(["git", "apply", "-"], cwd=work, input=text_only, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    v2 = repo.files("V2")
    for rel in ("src/new.ts", "src/style.css", "src/main.ts"):
        assert (work / rel).read_bytes() == v2[rel]
    assert not (work / "src/old.ts").exists()


def test_diff_of_a_version_with_itself_is_empty(two_versions: ProjectRepo) -> None:
    repo = two_versions
    assert repo.diff("V2", "V2", "patch") == ""
    assert repo.diff("V2", "V2", "files") == []
    assert repo.diff("V2", "V2", "stat") == {"files": [], "filesChanged": 0, "insertions": 0, "deletions": 0}
