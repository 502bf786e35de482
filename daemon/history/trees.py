"""Turning a workspace into git trees and trees back into files, safely in both directions."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from dulwich.object_store import BaseObjectStore, DiskObjectStore, PackBasedObjectStore
from dulwich.objects import Blob, ObjectID, ShaFile, Tree

from daemon.core.contract import FORBIDDEN_SEGMENTS, RESERVED_NAMES
from daemon.history.budget import Meter
from daemon.history.errors import HistoryError

FILE_MODE = 0o100644
EXEC_MODE = 0o100755
TREE_MODE = 0o040000
# Never part of a version: dependency trees are reinstalled from the lockfile.
SKIPPED_NAMES = frozenset({"node_modules"})

# A snapshot never holds more than this of new objects in memory: past it they go to disk as a pack (objects are
# only reachable once the commit, written last, is), and a file bigger than STREAM_BYTES is written as a loose
# object in CHUNK pieces, never read whole.
FLUSH_BYTES = 16 * 2**20
STREAM_BYTES = 2**20
CHUNK = 256 * 1024
# Reserved names the daemon itself writes at the root of a version: its install policy and the lockfile it resolved.
DAEMON_ROOT_FILES = frozenset({"pnpm-workspace.yaml", "pnpm-lock.yaml"})

# name -> (mode, sha) for a file, or a nested dict for a directory
Nested = dict[bytes, "tuple[int, ObjectID] | Nested"]


class Batch:
    """New objects held back and written as one pack on flush().

    Packed objects let prune copy their compressed bytes instead of recompressing build output;
    a pack only becomes visible once its index is in place, so readers never see half of it.
    """

    def __init__(self, store: PackBasedObjectStore) -> None:
        self.store = store
        self.new: dict[ObjectID, ShaFile] = {}
        self.pending = 0  # bytes held in `new`: past FLUSH_BYTES they are written out as a pack of their own

    def __contains__(self, sha: ObjectID) -> bool:
        return sha in self.new or sha in self.store

    def __getitem__(self, sha: ObjectID) -> ShaFile:
        return self.new[sha] if sha in self.new else self.store[sha]

    def add_object(self, obj: ShaFile) -> None:
        """Queue an object (no-op when already queued); the queue is written out once it holds FLUSH_BYTES."""
        if obj.id not in self.new:
            self.new[obj.id] = obj
            self.pending += obj.raw_length()
            if self.pending >= FLUSH_BYTES:
                self.flush()

    def flush(self) -> None:
        """Write every queued object as one pack."""
        if self.new:
            self.store.add_objects([(obj, None) for obj in self.new.values()])
            self.new.clear()
        self.pending = 0


def normalize_rel_dir(rel: str) -> str:
    """Validate a workspace-relative directory like "dist" or "apps/web/dist"; return it normalised."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        raise HistoryError("invalid_path", f"{rel!r} is not a relative directory")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in pure.parts) or not pure.parts:
        raise HistoryError("invalid_path", f"{rel!r} must be a plain relative directory (no '..', not absolute)")
    return pure.as_posix()


def _skipped(name: str) -> bool:
    return name.startswith(".git") or name in SKIPPED_NAMES


def collect(store: Batch, root: Path, exclude: Sequence[str] = (), prefix: str = "",
            meter: Meter | None = None) -> Nested:
    """Add every regular file under `root` to the batch as blobs; return the nested tree layout.

    Symlinks (to files or dirs), sockets and fifos are skipped, never followed; so are `.git*`,
    `node_modules` and the workspace-relative dirs in `exclude`. Each file's apparent size is charged to
    `meter` (when given) before it is read.
    """
    return _collect(store, root, {normalize_rel_dir(e) for e in exclude}, prefix, meter)


def _collect(store: Batch, root: Path, excluded: set[str], prefix: str, meter: Meter | None) -> Nested:
    layout: Nested = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError as exc:
        raise HistoryError("invalid_path", f"workspace {root} does not exist") from exc
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        if _skipped(entry.name) or rel in excluded or entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            sub = _collect(store, Path(entry.path), excluded, f"{rel}/", meter)
            if sub:
                layout[os.fsencode(entry.name)] = sub
        elif entry.is_file(follow_symlinks=False):
            layout[os.fsencode(entry.name)] = _add_file(store, entry, meter)
    return layout


def _add_file(store: Batch, entry: os.DirEntry[str], meter: Meter | None) -> tuple[int, ObjectID]:
    # O_NOFOLLOW closes the race where the file is swapped for a symlink after scandir looked at it.
    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise HistoryError("invalid_path", f"{entry.path} changed type while being read")
        if meter is not None:
            meter.charge(st.st_size, name=entry.name)
        mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
        if st.st_size > STREAM_BYTES and isinstance(store.store, DiskObjectStore):
            return mode, write_loose_blob(store.store, f, st.st_size, entry.path)
        data = f.read(st.st_size + 1)
        if len(data) != st.st_size:
            raise HistoryError("invalid_path", f"{entry.path} changed size while being read")
        blob = Blob.from_string(data)
    if blob.id not in store:
        store.add_object(blob)
    return mode, blob.id


def write_loose_blob(object_store: DiskObjectStore, f: BinaryIO, size: int, what: str) -> ObjectID:
    """Stream exactly `size` bytes of `f` into the store as one loose blob, CHUNK at a time; return its id.

    Hashed and compressed as it is read, into a temp file renamed into place complete, so memory stays at one chunk
    and a reader never sees half an object. Raises HistoryError("invalid_path") when the file is not `size` long.
    """
    header = b"blob %d\0" % size
    digest = hashlib.sha1(header)
    comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION)
    fd, tmp = tempfile.mkstemp(prefix="tmp_blob_", dir=object_store.path)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(comp.compress(header))
            left = size
            while left:
                piece = f.read(min(CHUNK, left))
                if not piece:
                    break
                left -= len(piece)
                digest.update(piece)
                out.write(comp.compress(piece))
            if left or f.read(1):
                raise HistoryError("invalid_path", f"{what} changed size while being read")
            out.write(comp.flush())
        sha = ObjectID(digest.hexdigest().encode("ascii"))
        if sha in object_store:
            os.unlink(tmp)
        else:
            dest = Path(object_store.path) / sha.decode()[:2]
            dest.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest / sha.decode()[2:])
        return sha
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def refused_source(path: str) -> str | None:
    """Why `path` may not be part of a version's sources (None when it may), checked at every depth.

    The contract refuses these paths from a generator; this is the same rule again at the door of history, so a
    file that reached a file set any other way (an older snapshot that walked the workspace after install scripts
    ran) never enters a commit, nor is written back from one.
    """
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "not a plain relative path"
    for seg in parts:
        if seg.startswith(".git") or seg.casefold() in SKIPPED_NAMES or seg.casefold() in FORBIDDEN_SEGMENTS:
            return f"{seg} is never part of a version"
    if parts[-1].casefold() in RESERVED_NAMES and path not in DAEMON_ROOT_FILES:
        return f"{parts[-1]} is reserved: the daemon owns install policy and the lockfile"
    return None


def from_files(store: Batch, files: dict[str, str | bytes], exclude: Sequence[str], meter: Meter) -> tuple[
        Nested, list[str]]:
    """The nested layout of a file set (path -> content), its blobs added to the batch; and the paths refused.

    Paths under `exclude` (build output dirs) and `.git*` names are left out quietly, as a workspace walk leaves
    them; any other path that `refused_source` names is left out and returned. Sizes are charged to `meter`
    before any blob is made.
    """
    excluded = [normalize_rel_dir(e) for e in exclude]
    layout: Nested = {}
    refused: list[str] = []
    for path in sorted(files):
        if any(path == e or path.startswith(e + "/") for e in excluded) or any(
                seg.startswith(".git") for seg in path.split("/")):
            continue  # as a workspace walk always skipped them (`.gitignore` is the project's, not an attack)
        if refused_source(path) is not None:
            refused.append(path)
            continue
        content = files[path]
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        meter.charge(len(data), name=path)
        blob = Blob.from_string(data)
        if blob.id not in store:
            store.add_object(blob)
        *dirs, name = [os.fsencode(p) for p in path.split("/")]
        node = layout
        for d in dirs:
            sub = node.setdefault(d, {})
            if not isinstance(sub, dict):
                raise HistoryError("invalid_path", f"{path!r} needs a folder where a file is")
            node = sub
        if name in node:
            raise HistoryError("invalid_path", f"{path!r} is both a file and a folder")
        node[name] = (FILE_MODE, blob.id)
    return layout, refused


def write_trees(store: Batch, layout: Nested) -> ObjectID:
    """Write the trees of a nested layout bottom-up; return the root tree id."""
    tree = Tree()
    for name, value in layout.items():
        if isinstance(value, dict):
            tree.add(name, TREE_MODE, write_trees(store, value))
        else:
            tree.add(name, value[0], value[1])
    if tree.id not in store:
        store.add_object(tree)
    return tree.id


def graft(store: Batch, root_tree: ObjectID, rel_dir: str, subtree: ObjectID | None) -> ObjectID:
    """Return a copy of `root_tree` with `rel_dir` replaced by `subtree` (removed when None)."""
    parts = [os.fsencode(p) for p in rel_dir.split("/")]

    def rebuild(tree_id: ObjectID | None, depth: int) -> ObjectID | None:
        tree = Tree()
        if tree_id is not None:
            old = store[tree_id]
            assert isinstance(old, Tree)
            for item in old.items():
                tree.add(item.path, item.mode, item.sha)
        name = parts[depth]
        current: ObjectID | None = None
        if name in tree and stat.S_ISDIR(tree[name][0]):
            current = tree[name][1]
        new = subtree if depth == len(parts) - 1 else rebuild(current, depth + 1)
        if name in tree:
            del tree[name]
        if new is not None:
            tree.add(name, TREE_MODE, new)
        if not tree.items():
            return None
        if tree.id not in store:
            store.add_object(tree)
        return tree.id

    result = rebuild(root_tree, 0)
    if result is None:
        empty = Tree()
        store.add_object(empty)
        return empty.id
    return result


def safe_rel_path(raw: bytes) -> str:
    """Decode a tree path and refuse anything that could escape the destination directory."""
    path = os.fsdecode(raw)
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") or p.startswith(".git") for p in parts):
        raise HistoryError("unsafe_path", f"refusing to write tree path {path!r}")
    return path


def iter_files(store: BaseObjectStore, tree_id: ObjectID) -> Iterator[tuple[str, int, ObjectID]]:
    """Yield (path, mode, blob sha) for every regular file of a tree, paths validated."""
    for entry in store.iter_tree_contents(tree_id):
        if entry.path is None or entry.mode is None or entry.sha is None:
            continue
        if not stat.S_ISREG(entry.mode):
            continue  # symlinks and gitlinks are never written; we never commit them either
        yield safe_rel_path(entry.path), entry.mode, entry.sha


def write_tree_to(store: BaseObjectStore, tree_id: ObjectID, dest: Path) -> None:
    """Write every file of a tree under `dest` (which must exist and be empty)."""
    made: set[str] = set()
    for path, mode, sha in iter_files(store, tree_id):
        target = dest / path
        parent = os.path.dirname(path)
        if parent and parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        blob = store[sha]
        fd = os.open(
            target,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            0o755 if mode == EXEC_MODE else 0o644,
        )
        with os.fdopen(fd, "wb") as f:
            f.writelines(blob.as_raw_chunks())
