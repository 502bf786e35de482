"""Crafted history for the budget tests: huge blobs written as loose objects without holding them in memory.

A repository on a droplet that snapshotted a workspace before the snapshot read only the contract's files holds
exactly this: a few blobs of hundreds of MiB (sparse files an install script wrote), tiny once compressed.
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from pathlib import Path

from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.repo import Repo

_CHUNK = 1 << 20


def plant_blob(repo_path: Path, size: int, head: bytes = b"8 bytes!") -> ObjectID:
    """A blob of `head` then zeros up to `size` bytes, written as a loose object in 1 MiB pieces; its sha."""
    header = b"blob %d\0" % size
    sha = hashlib.sha1(header)
    comp = zlib.compressobj(1)
    tmp = repo_path / "objects" / f"tmp-plant-{os.getpid()}-{time.monotonic_ns()}"
    with open(tmp, "wb") as f:
        f.write(comp.compress(header))
        left = size
        first = True
        while left:
            piece = min(left, _CHUNK)
            data = (head + bytes(piece - len(head))) if first else bytes(piece)
            first = False
            sha.update(data)
            f.write(comp.compress(data))
            left -= piece
        f.write(comp.flush())
    hexsha = sha.hexdigest()
    dest = repo_path / "objects" / hexsha[:2] / hexsha[2:]
    dest.parent.mkdir(exist_ok=True)
    os.replace(tmp, dest)
    return ObjectID(hexsha.encode())


def plant_version(repo_path: Path, version_id: str, files: dict[str, str], big: dict[str, int],
                  parent: str | None = None, *, dist: bool = False) -> str:
    """Commit `files` plus huge zero blobs (path -> size) as refs/tags/<version_id> (refs/dist/ when `dist`)."""
    with Repo(str(repo_path)) as repo:
        entries: dict[str, ObjectID] = {}
        made: dict[str, ObjectID] = {}
        for path, text in files.items():
            if text not in made:
                blob = Blob.from_string(text.encode())
                repo.object_store.add_object(blob)
                made[text] = blob.id
            entries[path] = made[text]
        for i, (path, size) in enumerate(big.items()):
            entries[path] = plant_blob(repo_path, size, b"%08d" % i)
        tree = _tree(repo, entries)
        commit = Commit()
        commit.tree = tree
        commit.parents = [repo.refs[f"refs/tags/{parent}".encode()]] if parent else []  # type: ignore[index]
        commit.author = commit.committer = b"crafted <crafted@localhost>"
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = b"crafted\n"
        repo.object_store.add_object(commit)
        repo.refs[(b"refs/dist/" if dist else b"refs/tags/") + version_id.encode()] = commit.id  # type: ignore[index]
        return commit.id.decode()


def _tree(repo: Repo, entries: dict[str, ObjectID]) -> ObjectID:
    nested: dict[str, object] = {}
    for path, sha in entries.items():
        *dirs, name = path.split("/")
        node = nested
        for d in dirs:
            node = node.setdefault(d, {})  # type: ignore[assignment]
        node[name] = sha

    def write(node: dict[str, object]) -> ObjectID:
        tree = Tree()
        for name, value in node.items():
            if isinstance(value, dict):
                tree.add(name.encode(), 0o040000, write(value))
            else:
                tree.add(name.encode(), 0o100644, value)  # type: ignore[arg-type]
        repo.object_store.add_object(tree)
        return tree.id

    return write(nested)
