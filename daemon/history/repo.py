"""ProjectRepo: one bare git repository per project holding every version, its dist window and packs.

Long because every operation on a project's repository (snapshots, the dist window, prune, reads, diffs, packs)
goes through this one class, under the same per-path lock and with its own budget; restore lives in restoring.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from dulwich.errors import NotGitRepository
from dulwich.objects import Commit, ObjectID, Tag
from dulwich.refs import Ref
from dulwich.repo import Repo

from daemon.history import diffs, packing, trees
from daemon.history.budget import OUTPUT, REPOSITORY, SOURCES, Budget, object_size
from daemon.history.errors import HistoryError
from daemon.history.locks import RepoLock, lock_for
from daemon.history.names import MAIN, init_refs
from daemon.history.names import VERSION_ID as _VERSION_ID
from daemon.history.restoring import restore_at
from sandbox.output import file_bytes

IDENTITY = b"previewd <previewd@localhost>"
TAGS = b"refs/tags/"
DIST = b"refs/dist/"
DEFAULT_DIFF_EXCLUDES = ("dist", "build", "out", ".next")


def _check_id(version_id: str) -> bytes:
    if not isinstance(version_id, str) or not _VERSION_ID.match(version_id):
        raise HistoryError("invalid_version_id", f"{version_id!r} is not a version id ([A-Za-z0-9_-], 1-64 chars)")
    return version_id.encode("ascii")


@contextmanager
def _built_beside(dest: Path, what: str) -> Iterator[Path]:
    """A temp dir beside `dest` to build into; renamed to `dest` (an empty dir there is replaced) when the block
    ends, removed when it raises: a process killed part-way leaves only the temp dir, never half of `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{what}-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ProjectRepo:
    """A project's bare repository. Safe for one writer thread alongside any number of reader threads.

    Each call opens its own dulwich Repo, so no object cache is shared across threads; the per-path
    lock keeps prune (which deletes pack files) away from readers.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not (self.path / "HEAD").is_file() or not (self.path / "objects").is_dir():
            raise HistoryError("not_a_repo", f"{self.path} is not a bare git repository (use open_or_init)")
        self._lock: RepoLock = lock_for(self.path)

    def writing(self) -> AbstractContextManager[None]:
        """Hold around a sequence of writes that no other writer may interleave with (re-entrant)."""
        return self._lock.writing()

    @classmethod
    def open_or_init(cls, path: Path) -> ProjectRepo:
        """Open the bare repository at `path`, creating it (and its parents) when absent.

        A new repository is made in a temp dir beside `path` and renamed in complete, so a daemon killed part-way
        leaves only that temp dir behind, never a half repository that would wedge the project.
        """
        path = Path(path)
        with lock_for(path).writing():
            if not (path / "HEAD").is_file():
                if path.is_symlink() or (path.exists() and any(path.iterdir())):
                    raise HistoryError("path_not_empty", f"{path} exists and is not a git repository")
                with _built_beside(path, "init") as tmp:
                    Repo.init_bare(str(tmp)).close()
                    cls._init_refs(tmp)
        return cls(path)

    @staticmethod
    def _init_refs(path: Path) -> None:
        init_refs(path)

    @contextmanager
    def _open(self) -> Iterator[Repo]:
        try:
            repo = Repo(str(self.path))
        except NotGitRepository as exc:
            raise HistoryError("not_a_repo", f"{self.path} is no longer a git repository") from exc
        try:
            yield repo
        finally:
            repo.close()

    # -- refs --------------------------------------------------------------------------------

    @staticmethod
    def _commit_of(repo: Repo, version_id: str, *, dist: bool = False) -> ObjectID:
        ref = Ref((DIST if dist else TAGS) + _check_id(version_id))
        try:
            sha = repo.refs[ref]
        except KeyError:
            if dist:
                raise HistoryError(
                    "no_dist",
                    f"version {version_id} has no build output in the repo "
                    "(never built, or outside the latest-3 window)",
                    version=version_id,
                ) from None
            raise HistoryError(
                "unknown_version", f"no version {version_id} in this repository", version=version_id
            ) from None
        obj = repo.object_store[sha]
        while isinstance(obj, Tag):  # tolerate annotated tags made by hand
            obj = repo.object_store[obj.object[1]]
        if not isinstance(obj, Commit):
            raise HistoryError("corrupt_repo", f"{ref.decode()} does not point at a commit")
        return obj.id

    def has_version(self, version_id: str) -> bool:
        """True when a source snapshot of `version_id` exists."""
        name = Ref(TAGS + _check_id(version_id))
        with self._lock.shared(), self._open() as repo:
            return name in repo.refs

    def versions(self) -> dict[str, str]:
        """Every version id with its source commit sha."""
        with self._lock.shared(), self._open() as repo:
            return {k.decode(): v.decode() for k, v in repo.refs.as_dict(Ref(TAGS[:-1])).items()}

    def dist_versions(self) -> list[str]:
        """Version ids that still have a dist commit, sorted."""
        with self._lock.shared(), self._open() as repo:
            return sorted(k.decode() for k in repo.refs.keys(Ref(DIST[:-1])))

    def commit_sha(self, version_id: str) -> str:
        """The source commit sha of a version."""
        with self._lock.shared(), self._open() as repo:
            return self._commit_of(repo, version_id).decode()

    # -- writing -----------------------------------------------------------------------------

    def _commit(self, batch: trees.Batch, tree: ObjectID, parents: list[ObjectID], message: str) -> ObjectID:
        commit = Commit()
        commit.tree = tree
        commit.parents = parents
        commit.author = commit.committer = IDENTITY
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        text = message if message.endswith("\n") else message + "\n"
        commit.message = text.encode("utf-8", errors="replace")
        batch.add_object(commit)
        batch.flush()
        return commit.id

    def snapshot(
        self,
        workspace: Path,
        version_id: str,
        parent_version_id: str | None,
        message: str,
        exclude_dirs: Sequence[str] = (),
        budget: Budget = SOURCES,
    ) -> str:
        """Commit a directory's files as `version_id` (child of `parent_version_id`); return the commit sha.

        Builds never call this (their snapshot is `snapshot_files`: a workspace holds what install scripts
        wrote); it is for trees the daemon itself wrote. Skips `.git*`, `node_modules`, `exclude_dirs`
        (workspace-relative) and every symlink; each file's apparent size is charged to `budget` before it is
        read. Tags the commit refs/tags/<version_id> and moves refs/heads/main (HEAD) to it.
        Raises HistoryError: version_exists, unknown_version (parent), invalid_version_id, invalid_path,
        history_limit.
        """
        name = Ref(TAGS + _check_id(version_id))
        with self._lock.writing(), self._open() as repo:
            if name in repo.refs:
                raise HistoryError("version_exists", f"version {version_id} is already snapshotted")
            parents = [self._commit_of(repo, parent_version_id)] if parent_version_id else []
            batch = trees.Batch(repo.object_store)
            layout = trees.collect(batch, Path(workspace), exclude_dirs,
                                   meter=budget.meter(f"snapshot of version {version_id}"))
            tree = trees.write_trees(batch, layout)
            sha = self._commit(batch, tree, parents, message or f"version {version_id}")
            if not repo.refs.add_if_new(name, sha):
                raise HistoryError("version_exists", f"version {version_id} was snapshotted concurrently")
            repo.refs[Ref(MAIN)] = sha
            return sha.decode()

    def snapshot_files(
        self,
        files: dict[str, str | bytes],
        version_id: str,
        parent_version_id: str | None,
        message: str,
        exclude_dirs: Sequence[str] = (),
        budget: Budget = SOURCES,
    ) -> tuple[str, list[str]]:
        """Commit a file set (what the contract wrote, and the daemon's own files) as `version_id`.

        Never reads the workspace, so nothing an install script wrote there can enter history. Paths that
        `trees.refused_source` names (reserved or daemon-owned names at any depth) are left out and returned with
        the commit sha. Raises HistoryError: version_exists, unknown_version, history_limit (over `budget`).
        """
        name = Ref(TAGS + _check_id(version_id))
        meter = budget.meter(f"snapshot of version {version_id}")
        with self._lock.writing(), self._open() as repo:
            if name in repo.refs:
                raise HistoryError("version_exists", f"version {version_id} is already snapshotted")
            parents = [self._commit_of(repo, parent_version_id)] if parent_version_id else []
            batch = trees.Batch(repo.object_store)
            layout, refused = trees.from_files(batch, files, exclude_dirs, meter)
            tree = trees.write_trees(batch, layout)
            sha = self._commit(batch, tree, parents, message or f"version {version_id}")
            if not repo.refs.add_if_new(name, sha):
                raise HistoryError("version_exists", f"version {version_id} was snapshotted concurrently")
            repo.refs[Ref(MAIN)] = sha
            return sha.decode(), refused

    def tag_tree(self, target_version_id: str, version_id: str, message: str) -> str:
        """Commit the source tree of `target_version_id` again as `version_id` (its child); nothing is read."""
        name = Ref(TAGS + _check_id(version_id))
        with self._lock.writing(), self._open() as repo:
            if name in repo.refs:
                raise HistoryError("version_exists", f"version {version_id} is already snapshotted")
            target = self._commit_of(repo, target_version_id)
            commit = repo.object_store[target]
            assert isinstance(commit, Commit)
            batch = trees.Batch(repo.object_store)
            sha = self._commit(batch, commit.tree, [target], message)
            if not repo.refs.add_if_new(name, sha):
                raise HistoryError("version_exists", f"version {version_id} was snapshotted concurrently")
            repo.refs[Ref(MAIN)] = sha
            return sha.decode()

    def snapshot_dist(self, root: Path, version_id: str, out_dir: str, budget: Budget = OUTPUT) -> str:
        """Commit the version's sources plus its build output dir (`root`/`out_dir`) as refs/dist/<version_id>.

        `root` is a copy no build step can write (the pipeline's staging dir, daemon/project/staging.py), never the
        live workspace. The source part is the version's own snapshot, so the dist tree differs from it only in
        `out_dir`. Returns the sha. Each
        file's apparent size is charged to `budget` before it is read; big files are streamed, never read whole.
        Raises HistoryError: unknown_version, no_output (out_dir missing or a symlink), invalid_path, history_limit.
        """
        rel = trees.normalize_rel_dir(out_dir)
        out = Path(root) / rel
        if out.is_symlink() or not out.is_dir():
            raise HistoryError("no_output", f"build output dir {rel} is missing from the workspace (or a symlink)")
        with self._lock.writing(), self._open() as repo:
            source = self._commit_of(repo, version_id)
            source_commit = repo.object_store[source]
            assert isinstance(source_commit, Commit)
            batch = trees.Batch(repo.object_store)
            meter = budget.meter(f"build output of version {version_id}")
            out_tree = trees.write_trees(batch, trees.collect(batch, out, (), meter=meter))
            tree = trees.graft(batch, source_commit.tree, rel, out_tree)
            sha = self._commit(batch, tree, [source], f"dist {version_id}: sources + {rel}")
            repo.refs[Ref(DIST + version_id.encode())] = sha
            return sha.decode()

    def slide_dist_window(self, keep: Sequence[str]) -> list[str]:
        """Delete every refs/dist/* whose version is not in `keep`; return the removed ids (sorted).

        Objects stay on disk until prune().
        """
        keep_set = {_check_id(k).decode() for k in keep}
        removed = []
        with self._lock.writing(), self._open() as repo:
            for name in sorted(repo.refs.keys(Ref(DIST[:-1]))):
                if name.decode() not in keep_set:
                    repo.refs.remove_if_equals(Ref(DIST + name), None)
                    removed.append(name.decode())
        return removed

    def prune(self, budget: Budget = REPOSITORY) -> int:
        """Repack what any ref reaches into one pack and delete everything else; return bytes freed.

        Raises HistoryError("history_limit") before repacking when what is reachable is over `budget`.
        """
        with self._lock.exclusive():
            before = self.size_bytes()
            with self._open() as repo:
                refs = repo.refs.as_dict()
                dist = [sha for name, sha in refs.items() if name.startswith(DIST)]
                source = [sha for name, sha in refs.items() if not name.startswith(DIST)]
                meter = budget.meter(f"prune of {self.path.parent.name}")
                wanted, dist_only = packing.reachable(repo.object_store, source, dist, meter)
                obsolete = packing.repack(self.path, repo.object_store, wanted, dist_only, meter)
                repo.refs.pack_refs()
            for f in obsolete:
                f.unlink(missing_ok=True)
            for d in (self.path / "objects").iterdir():
                if d.is_dir() and len(d.name) == 2 and not any(d.iterdir()):
                    d.rmdir()
            return max(0, before - self.size_bytes())

    # -- reading -----------------------------------------------------------------------------

    def files(self, version_id: str, budget: Budget = SOURCES,
              admit: Callable[[str, int], bool] | None = None) -> dict[str, bytes]:
        """The source tree of a version as {posix path: content}.

        `admit(path, size)`, when given, is asked before each blob is read; a file it refuses is left out unread.
        Every admitted blob's size is charged to `budget` before it is read: HistoryError("history_limit") past it.
        """
        meter = budget.meter(f"sources of version {version_id}")
        with self._lock.shared(), self._open() as repo:
            commit = repo.object_store[self._commit_of(repo, version_id)]
            assert isinstance(commit, Commit)
            store = repo.object_store
            listed = []
            for p, _mode, sha in trees.iter_files(store, commit.tree):
                size = object_size(store, sha)
                if admit is not None and not admit(p, size):
                    meter.charge(0, name=p)
                    continue
                meter.charge(size, name=p)
                listed.append((p, sha))
            return {p: store[sha].as_raw_string() for p, sha in listed}

    def file_sizes(self, version_id: str, budget: Budget = SOURCES) -> list[tuple[str, int]]:
        """(path, size) of every file of a version's sources, sorted, sized from object headers (nothing read)."""
        meter = budget.meter(f"file list of version {version_id}")
        with self._lock.shared(), self._open() as repo:
            commit = repo.object_store[self._commit_of(repo, version_id)]
            assert isinstance(commit, Commit)
            out = []
            for p, _mode, sha in trees.iter_files(repo.object_store, commit.tree):
                meter.charge(0, name=p)  # files and seconds; the bytes are never read
                out.append((p, object_size(repo.object_store, sha)))
            return sorted(out)

    def checkout(self, version_id: str, dest: Path, *, dist: bool = False, budget: Budget = REPOSITORY) -> None:
        """Write the version's source tree (dist tree when `dist`) into `dest`, which must be absent or empty.

        Written beside `dest` then renamed in, so `dest` never holds a partial tree; every blob is charged to
        `budget` before anything is written. Raises HistoryError: unknown_version, no_dist, dest_not_empty,
        unsafe_path, history_limit.
        """
        dest = Path(dest)
        if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
            raise HistoryError("dest_not_empty", f"checkout target {dest} exists and is not an empty directory")
        with _built_beside(dest, "checkout") as tmp, self._lock.shared(), self._open() as repo:
            commit = repo.object_store[self._commit_of(repo, version_id, dist=dist)]
            assert isinstance(commit, Commit)
            meter = budget.meter(f"checkout of version {version_id}")
            for p, _mode, sha in trees.iter_files(repo.object_store, commit.tree):
                meter.charge(object_size(repo.object_store, sha), name=p)
            trees.write_tree_to(repo.object_store, commit.tree, tmp)

    def diff(
        self,
        a: str,
        b: str,
        mode: diffs.DiffMode = "patch",
        exclude_dirs: Sequence[str] = DEFAULT_DIFF_EXCLUDES,
        budget: Budget = SOURCES,
    ) -> str | dict[str, Any] | list[dict[str, str]]:
        """Diff the source trees of versions `a` (old) and `b` (new), skipping paths under `exclude_dirs`.

        patch: git-style unified diff text; binary files appear as "Binary files a/x and b/x differ".
        stat:  {"files": [{"path", "change", "insertions", "deletions", "binary"}], "filesChanged",
                "insertions", "deletions"}; binary files count 0/0.
        files: [{"path", "change": "added" | "modified" | "deleted"}], sorted by path.
        Each changed blob is charged to `budget` before it is read: HistoryError("history_limit") past it.
        """
        if mode not in ("patch", "stat", "files"):
            raise HistoryError("invalid_mode", f"diff mode {mode!r} is not one of patch, stat, files")
        with self._lock.shared(), self._open() as repo:
            store = repo.object_store
            trees_ = []
            for v in (a, b):
                commit = store[self._commit_of(repo, v)]
                assert isinstance(commit, Commit)
                trees_.append(commit.tree)
            meter = budget.meter(f"diff of {a} and {b}")
            return diffs.render(diffs.file_diffs(store, trees_[0], trees_[1], exclude_dirs, meter), mode)

    def size_bytes(self) -> int:
        """Apparent size of every file in the repository directory."""
        return file_bytes(self.path)

    # -- packs -------------------------------------------------------------------------------

    def export_pack(self, base_version_id: str | None, top_version_id: str, budget: Budget = REPOSITORY) -> bytes:
        """Zip of a git pack with the objects reachable from top's source commit and not from base's.

        Members: objects.pack, objects.idx (git v2 index), manifest.json
        ({"format", "base", "top", "base_commit", "top_commit", "objects", "pack_sha1", "refs": {ref: sha}}).
        Whole history when base is None.
        """
        with self._lock.shared(), self._open() as repo:
            top = self._commit_of(repo, top_version_id)
            base = self._commit_of(repo, base_version_id) if base_version_id else None
            tags = {k.decode(): v for k, v in repo.refs.as_dict(Ref(TAGS[:-1])).items()}
            meta = {
                "base": base_version_id,
                "top": top_version_id,
                "base_commit": base.decode() if base else None,
                "top_commit": top.decode(),
            }
            return packing.export_zip(repo.object_store, base, top, tags, meta,
                                      budget.meter(f"pack of version {top_version_id}"))

    @classmethod
    def restore(cls, path: Path, packs: Sequence[tuple[str, bytes]], budget: Budget = REPOSITORY) -> ProjectRepo:
        """Rebuild a repository at the empty (or absent) `path` from (name, zip bytes) packs, oldest first.

        Built in a temp dir beside `path` and renamed in only when complete and connected.
        Every pack is scanned against `budget` (uncompressed bytes, objects, seconds) before it is ingested.
        Raises HistoryError: path_not_empty, corrupt_pack / missing_pack (naming the pack), history_limit.
        """
        restore_at(Path(path), packs, budget)
        return cls(Path(path))
