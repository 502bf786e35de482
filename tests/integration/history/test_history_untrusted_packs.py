"""Packs are untrusted input on restore: tree paths that could escape a checkout are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from daemon.history import HistoryError, ProjectRepo
from tests.integration.history.history_support import Repos


@pytest.mark.parametrize("bad_name", [b"..", b".git"])
def test_restore_refuses_a_pack_with_an_escaping_path(repos: Repos, tmp_path: Path, bad_name: bytes) -> None:
    # Built by hand with dulwich: previewd itself never writes such trees.
    repo = repos.new()
    with Repo(str(repo.path)) as raw:
        blob = Blob.from_string(b"owned\n")
        inner = Tree()
        inner.add(b"evil", 0o100644, blob.id)
        root = Tree()
        root.add(bad_name, 0o040000, inner.id)
        commit = Commit()
        commit.tree = root.id
        commit.author = commit.committer = b"x <x@x>"
        commit.author_time = commit.commit_time = 0
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"evil\n"
        for obj in (blob, inner, root, commit):
            raw.object_store.add_object(obj)
        raw.refs[b"refs/tags/EVIL"] = commit.id  # type: ignore[index]
    data = repo.export_pack(None, "EVIL")
    # the hand-made repo is not valid git: drop it before the fsck fixture looks
    shutil.rmtree(repo.path)
    target = tmp_path / "restored" / "repo.git"
    with pytest.raises(HistoryError) as err:
        ProjectRepo.restore(target, [("evil.pack.zip", data)])
    assert err.value.code == "unsafe_path"
    assert not target.exists() and list(target.parent.iterdir()) == []
