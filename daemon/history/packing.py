"""Git packs: repacking what is reachable (prune), exporting version packs, ingesting them on restore."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from dulwich.object_store import DiskObjectStore, MissingObjectFinder
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.pack import (
    UnpackedObject,
    create_delta,
    find_reusable_deltas,
    full_unpacked_object,
    pack_object_header,
    write_pack_data,
    write_pack_index,
)

from daemon.history.errors import HistoryError

# Deltas pay off on source text; big or binary blobs (images, bundles) rarely delta and the
# delta search is quadratic on dissimilar input, so they are stored whole.
DELTA_MAX_BYTES = 256 * 1024
DELTA_WINDOW = 10
DELTA_MAX_DEPTH = 50
PACK_FORMAT = "previewd-git-pack/1"
_WHOLE_TYPES = (Commit.type_num, Tree.type_num, Blob.type_num, Tag.type_num)
_LOOSE_DIR = re.compile(r"^[0-9a-f]{2}$")

Hint = tuple[int, bytes | None]  # (type_num, path) as dulwich's pack code expects


def reachable(
    store: DiskObjectStore, source_roots: Iterable[ObjectID], dist_roots: Iterable[ObjectID] = ()
) -> tuple[dict[ObjectID, Hint], set[ObjectID]]:
    """Every object reachable from the roots with a path hint, plus those reached only from dist roots.

    Raises HistoryError("corrupt_repo") when a reachable object is missing.
    """
    hints: dict[ObjectID, Hint] = {}
    source = _walk(store, source_roots, hints)
    dist_only = _walk(store, dist_roots, hints) - source
    return hints, dist_only


def _walk(store: DiskObjectStore, roots: Iterable[ObjectID], hints: dict[ObjectID, Hint]) -> set[ObjectID]:
    seen: set[ObjectID] = set()
    todo: deque[tuple[ObjectID, bytes | None]] = deque((r, None) for r in roots)
    while todo:
        sha, path = todo.popleft()
        if sha in seen:
            continue
        seen.add(sha)
        try:
            obj = store[sha]
        except KeyError as exc:
            raise HistoryError("corrupt_repo", f"object {sha.decode()} is referenced but missing") from exc
        hints.setdefault(sha, (obj.type_num, path))
        if isinstance(obj, Commit):
            todo.append((obj.tree, b""))
            todo.extend((p, None) for p in obj.parents)
        elif isinstance(obj, Tree):
            for item in obj.items():
                assert item.sha is not None and item.path is not None and item.mode is not None
                if item.mode & 0o170000 == 0o160000:
                    continue  # gitlink: points into another repository
                child = item.path if not path else path + b"/" + item.path
                todo.append((item.sha, child))
        elif isinstance(obj, Tag):
            todo.append((obj.object[1], None))
    return seen


def pack_records(
    store: DiskObjectStore,
    wanted: dict[ObjectID, Hint],
    no_delta: AbstractSet[ObjectID] = frozenset(),
) -> Iterator[UnpackedObject]:
    """Records of a self-contained pack of `wanted`: reused deltas, new deltas on small text, whole ones."""
    wanted_set = set(wanted)
    reused = list(find_reusable_deltas(store, wanted_set))
    yield from reused
    todo = wanted_set - {_hex(u) for u in reused}
    groups: dict[Hint, list[ShaFile]] = {}
    for sha in sorted(todo):
        hint = wanted[sha]
        if sha in no_delta or hint[0] not in (Blob.type_num, Tree.type_num) or hint[1] is None:
            yield _whole(store, sha)
            continue
        obj = store[sha]
        if obj.raw_length() > DELTA_MAX_BYTES or (isinstance(obj, Blob) and b"\0" in obj.as_raw_string()[:8000]):
            yield _whole(store, sha)
        else:
            groups.setdefault(hint, []).append(obj)
    for objs in groups.values():
        yield from _deltify_group(objs)


def _whole(store: DiskObjectStore, sha: ObjectID) -> UnpackedObject:
    """A whole-object record, copying the compressed bytes from an existing pack when it has them.

    Recompressing megabytes of build output on every prune would dominate its cost.
    """
    try:
        unpacked = store.get_unpacked_object(sha, include_comp=True)
    except KeyError:  # loose object
        return full_unpacked_object(store[sha])
    if unpacked.pack_type_num not in _WHOLE_TYPES or not unpacked.comp_chunks:
        return full_unpacked_object(store[sha])  # stored as a delta there: write it whole here
    # dulwich's writer emits comp_chunks verbatim, so they must start with the entry header
    size = unpacked.decomp_len if unpacked.decomp_len is not None else sum(map(len, unpacked.decomp_chunks))
    header = pack_object_header(unpacked.pack_type_num, None, size, store.object_format)
    unpacked.comp_chunks = [bytes(header), *unpacked.comp_chunks]
    return unpacked


def _deltify_group(objs: list[ShaFile]) -> Iterator[UnpackedObject]:
    # Biggest first, as git does: later (smaller) versions become deltas against it.
    objs.sort(key=lambda o: -o.raw_length())
    window: deque[tuple[bytes, bytes, int]] = deque(maxlen=DELTA_WINDOW)
    for obj in objs:
        raw = obj.as_raw_string()
        best: list[bytes] | None = None
        best_len, best_base, best_depth = len(raw), None, 0
        for base_sha, base_raw, depth in window:
            if depth >= DELTA_MAX_DEPTH:
                continue
            delta = list(create_delta(base_raw, raw))
            size = sum(map(len, delta))
            if size < best_len:
                best, best_len, best_base, best_depth = delta, size, base_sha, depth + 1
        digest = obj.sha().digest()
        if best is None:
            yield full_unpacked_object(obj)
        else:
            yield UnpackedObject(
                obj.type_num, sha=digest, delta_base=best_base, decomp_len=best_len, decomp_chunks=best
            )
        window.appendleft((digest, raw, best_depth))


def _hex(unpacked: UnpackedObject) -> ObjectID:
    return ObjectID(unpacked.sha().hex().encode("ascii"))


def repack(path: Path, store: DiskObjectStore, wanted: dict[ObjectID, Hint], no_delta: set[ObjectID]) -> list[Path]:
    """Write one pack holding exactly `wanted`; return the files it makes obsolete (old packs, loose)."""
    pack_dir = Path(store.pack_dir)
    before = {p for p in pack_dir.iterdir() if p.is_file()}
    loose = [f for d in Path(store.path).iterdir() if d.is_dir() and _LOOSE_DIR.match(d.name) for f in d.iterdir()]
    new = store.add_pack_data(len(wanted), pack_records(store, wanted, no_delta)) if wanted else None
    keep = set()
    if new is not None:
        stem = os.path.basename(new._basename)
        keep = {p for p in pack_dir.iterdir() if p.name.startswith(stem + ".")}
    return sorted((before - keep) | set(loose))


def export_zip(
    store: DiskObjectStore,
    base: ObjectID | None,
    top: ObjectID,
    tags: dict[str, ObjectID],
    meta: dict[str, Any],
) -> bytes:
    """Zip of a self-contained pack (objects reachable from top, not from base), its index, a manifest."""
    finder = MissingObjectFinder(store, haves=[base] if base else [], wants=[top])
    wanted: dict[ObjectID, Hint] = {}
    for sha, hint in finder:
        wanted[sha] = (hint[0], hint[1]) if hint else (store[sha].type_num, None)
    pack = io.BytesIO()
    entries, checksum = write_pack_data(
        pack.write, pack_records(store, wanted), num_records=len(wanted), object_format=store.object_format
    )
    idx = io.BytesIO()
    write_pack_index(idx, sorted((sha, off, crc) for sha, (off, crc) in entries.items()), checksum)
    manifest = {
        "format": PACK_FORMAT,
        **meta,
        "objects": len(wanted),
        "pack_sha1": checksum.hex(),
        "refs": {f"refs/tags/{name}": sha.decode() for name, sha in sorted(tags.items()) if sha in wanted},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("objects.pack", pack.getvalue(), compress_type=zipfile.ZIP_STORED)
        zf.writestr("objects.idx", idx.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("manifest.json", json.dumps(manifest, indent=1), compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


# What one entry of a pack zip may unpack to (a zip's declared sizes are only a claim: the bytes are counted).
_PACK_CAPS = {"manifest.json": 8 * 2**20, "objects.idx": 256 * 2**20, "objects.pack": 2**30}


def _read_capped(zf: zipfile.ZipFile, entry: str) -> bytes:
    cap = _PACK_CAPS[entry]
    if zf.getinfo(entry).file_size > cap:
        raise ValueError(f"{entry} declares more than {cap} bytes")
    with zf.open(entry) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"{entry} unpacks past {cap} bytes")
    return data


def read_zip(name: str, data: bytes) -> tuple[dict[str, Any], bytes]:
    """Open one exported pack zip; return (manifest, pack bytes). Raises HistoryError("corrupt_pack")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if len(zf.infolist()) > len(_PACK_CAPS):
                raise ValueError(f"{len(zf.infolist())} entries, a pack zip holds {len(_PACK_CAPS)}")
            manifest = json.loads(_read_capped(zf, "manifest.json"))
            pack = _read_capped(zf, "objects.pack")
            idx = _read_capped(zf, "objects.idx")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise HistoryError("corrupt_pack", f"pack {name} is unreadable: {exc}", pack=name) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
        raise HistoryError("corrupt_pack", f"pack {name} has no {PACK_FORMAT} manifest", pack=name)
    refs = manifest.get("refs")
    if not isinstance(refs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{40}", v) for k, v in refs.items()
    ):
        raise HistoryError("corrupt_pack", f"pack {name} has a malformed refs manifest", pack=name)
    if len(pack) < 32 or len(idx) < 40 or idx[-40:-20] != pack[-20:] or manifest.get("pack_sha1") != pack[-20:].hex():
        raise HistoryError("corrupt_pack", f"pack {name}: pack, index and manifest checksums disagree", pack=name)
    return manifest, pack


def ingest(store: DiskObjectStore, name: str, pack: bytes) -> None:
    """Verify a pack object by object and add it to the store. Raises HistoryError("corrupt_pack")."""
    buf = io.BytesIO(pack)
    try:
        store.add_thin_pack(buf.read, None)
    except Exception as exc:  # any decoding failure of untrusted bytes means the same thing
        raise HistoryError(
            "corrupt_pack", f"pack {name} failed verification: {type(exc).__name__}: {exc}", pack=name
        ) from exc
