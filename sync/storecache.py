"""The fleet's shared pnpm store cache: a content-addressed snapshot of pnpm's store in the object store, published
by the daemon from packages pnpm verified, and imported by a droplet only after every byte is checked again.

pnpm's store (v10) is two folders of immutable files: ``files/<hh>/<sha512 hex rest>[-exec]`` (each file named by
the sha512 of its bytes) and ``index/<hh>/<hex[2:64]>-<name>@<version>.json`` (one per package, named after the
sha512 integrity of the package's tarball, which the lockfile and the registry's metadata carry, and listing the
package's files with their integrity). Both are content-addressed, so the bucket copy is synced incrementally: an
object that exists is never written again. Keys below the cache's own prefix:

    packages/<sha512 hex>.tar     one package: its index as pnpm wrote it (``index.json``) and each of its files,
                                  named by the sha512 of its bytes (one request per package, not per file)
    hot/<droplet>.json            what this droplet's builds installed: {"name@version": {integrity, uses, bytes}}

The rules (README "Warm start"): a package is imported only when the registry's integrity for its name@version
(`trusted`) equals the integrity its index is filed under, the index names that package, and every file's bytes
hash to the integrity the index gives them; anything else is refused whole and counted. Publishing reads only the
daemon's store (written by `pnpm install` alone, hidden or read-only to every step that runs generated code) and
re-hashes every file before upload, so a file changed behind pnpm's back is never shared.

Long because the format, the checks and both directions (publish, import) belong together: a change to one side
of the bundle format is a change to the other, and the checks sit next to the bytes they guard.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync.errors import NotFound, SyncError
from sync.objects.base import ObjectStore

STORE_VERSION = "v10"  # pnpm 10's store layout
MAX_INDEX_BYTES = 4 * 2**20  # a package index is a few KiB; a huge one is refused unread
MAX_FILE_BYTES = 256 * 2**20
PARALLEL = 8  # object requests in flight: a package tree is thousands of small files, each one round trip
# What a package id may be before it becomes a path in the store or an entry of a package.json the daemon writes.
NAME_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]{0,100}/)?[a-z0-9][a-z0-9._~-]{0,213}$")
VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]{1,100})?$")
# pnpm-lock.yaml v9: a package key line, then (on a following line) its resolution with an integrity.
_LOCK_KEY = re.compile(r"^  '?((?:@[^@/\s']+/)?[^@\s']+)@([^\s:'()]+)'?:\s*$")
_LOCK_INTEGRITY = re.compile(r"^    resolution: \{integrity: (sha512-[A-Za-z0-9+/=]+)\}\s*$")


@dataclass(frozen=True)
class Package:
    """One registry package at one version, with the sha512 integrity of its tarball."""

    name: str
    version: str
    integrity: str

    @property
    def pkg_id(self) -> str:
        return f"{self.name}@{self.version}"


def integrity_hex(integrity: str) -> str:
    """The hex digest of a ``sha512-<base64>`` integrity; ValueError for any other form."""
    if not integrity.startswith("sha512-"):
        raise ValueError(f"not a sha512 integrity: {integrity[:40]!r}")
    try:
        raw = base64.b64decode(integrity[7:], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("integrity is not base64") from None
    if len(raw) != 64:
        raise ValueError("a sha512 integrity holds 64 bytes")
    return raw.hex()


def valid_package(name: str, version: str) -> bool:
    """A registry name and an exact version: nothing that could become another path or a range."""
    return bool(NAME_RE.fullmatch(name) and VERSION_RE.fullmatch(version))


def lockfile_packages(text: str) -> list[Package]:
    """The registry packages of a pnpm-lock.yaml (v9) with a sha512 integrity; tarball, git and directory
    resolutions (no integrity line) are left out."""
    out: list[Package] = []
    current: tuple[str, str] | None = None
    section = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.rstrip() == "packages:"
            current = None
            continue
        if not section:
            continue
        if m := _LOCK_KEY.match(line):
            current = (m.group(1), m.group(2))
        elif current and (m := _LOCK_INTEGRITY.match(line)):
            if valid_package(*current):
                out.append(Package(current[0], current[1], m.group(1)))
            current = None
    return out


class StoreLayout:
    """Paths in a local pnpm store (the dir given as ``--store-dir``)."""

    def __init__(self, store_dir: Path) -> None:
        self.root = store_dir / STORE_VERSION

    def index_path(self, pkg: Package) -> Path:
        hx = integrity_hex(pkg.integrity)
        safe = re.sub(r'[\\/:*?"<>|]', "+", pkg.pkg_id)  # as pnpm names it
        return self.root / "index" / hx[:2] / f"{hx[2:64]}-{safe}.json"

    def file_path(self, hex_digest: str, executable: bool) -> Path:
        return self.root / "files" / hex_digest[:2] / (hex_digest[2:] + ("-exec" if executable else ""))


def _sha512_file(path: Path, limit: int = MAX_FILE_BYTES) -> tuple[str, int]:
    h = hashlib.sha512()
    n = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        while chunk := f.read(1 << 20):
            n += len(chunk)
            if n > limit:
                raise ValueError(f"{path.name} is larger than {limit} bytes")
            h.update(chunk)
    return h.hexdigest(), n


def _read_regular(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit} bytes")
    return data


@dataclass(frozen=True)
class FileEntry:
    path: str
    hex: str
    size: int
    executable: bool


def parse_index(data: bytes, pkg: Package) -> list[FileEntry]:
    """The files of a package index, checked against the package it must describe; ValueError naming the flaw."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("name") != pkg.name or doc.get("version") != pkg.version:
        raise ValueError(f"the index does not describe {pkg.pkg_id}")
    files = doc.get("files")
    if not isinstance(files, dict) or not files:
        raise ValueError("the index lists no files")
    out = []
    for rel, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("integrity"), str):
            raise ValueError(f"file {rel!r}: no integrity")
        size, mode = entry.get("size"), entry.get("mode")
        if not isinstance(size, int) or not isinstance(mode, int) or size < 0 or size > MAX_FILE_BYTES:
            raise ValueError(f"file {rel!r}: bad size or mode")
        out.append(FileEntry(str(rel), integrity_hex(entry["integrity"]), size, bool(mode & 0o111)))
    return out


@dataclass
class Report:
    """What one publish or import did: package ids by outcome, bytes moved, and why each refusal."""

    done: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # in the lockfile, not installed here (another platform's)
    refused: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    over_budget: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"done": len(self.done), "present": len(self.present), "skipped": len(self.skipped),
                "refused": dict(self.refused),
                "bytes": self.bytes, "overBudget": self.over_budget}


@dataclass(frozen=True)
class HotPackage:
    package: Package
    uses: int
    bytes: int


class StoreCache:
    """The shared store cache in one object store (give it a store whose keys no user key can reach: the runtime
    puts it under the bucket's ``_store-cache/`` prefix, a name no user id may start with)."""

    def __init__(self, objects: ObjectStore, store_dir: Path, scratch: Path, droplet: str) -> None:
        self.objects = objects
        self.local = StoreLayout(store_dir)
        self.scratch = scratch
        self.droplet = droplet
        self._known: set[str] | None = None  # bundles seen in the bucket (immutable: once there, always there)
        self._hot: dict[str, dict[str, Any]] = {}

    @staticmethod
    def bundle_key(pkg: Package) -> str:
        return f"packages/{integrity_hex(pkg.integrity)}.tar"

    # -- publish ---------------------------------------------------------------------------------------------
    def _exists(self, key: str) -> bool:
        # Listed once, then kept: bundles are immutable, and one another droplet uploads meanwhile costs only a
        # second upload of the same bytes (no HEAD per package).
        if self._known is None:
            self._known = set(self.objects.list("packages/"))
        return key in self._known

    def publish(self, packages: Iterable[Package]) -> Report:
        """Upload what the bucket lacks of these packages from this droplet's store, each file re-hashed first;
        then record them in this droplet's hot list. A package whose store copy does not verify is refused."""
        rep = Report()
        lock = threading.Lock()

        def one(pkg: Package) -> None:
            try:
                size = self._publish_one(pkg, rep, lock)
            except (OSError, ValueError, SyncError) as exc:
                with lock:
                    rep.refused[pkg.pkg_id] = str(exc)[:300]
                return
            if size is not None:
                with lock:
                    hot = self._hot.setdefault(pkg.pkg_id, {"integrity": pkg.integrity, "uses": 0, "bytes": size})
                    hot["uses"] += 1

        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="store-cache") as pool:
            list(pool.map(one, packages))
        rep.done.sort()
        if rep.done or rep.present:
            self._write_hot()
        return rep

    def _publish_one(self, pkg: Package, rep: Report, lock: threading.Lock) -> int | None:
        try:
            data = _read_regular(self.local.index_path(pkg), MAX_INDEX_BYTES)
        except FileNotFoundError:
            with lock:
                rep.skipped.append(pkg.pkg_id)  # an optional package for another platform: never installed here
            return None
        entries = parse_index(data, pkg)
        total = sum(e.size for e in entries)
        key = self.bundle_key(pkg)
        with lock:
            known = self._exists(key)
        if known:
            with lock:
                rep.present.append(pkg.pkg_id)
            return total
        # One bundle per package (its index and its files, each named by its sha512): one request, not one per file.
        with tempfile.NamedTemporaryFile(dir=self.scratch, suffix=".tar") as tmp:
            with tarfile.open(fileobj=tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo("index.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                for hx in sorted({e.hex for e in entries}):
                    e = next(x for x in entries if x.hex == hx)
                    local = self.local.file_path(e.hex, e.executable)
                    blob = _read_regular(local, MAX_FILE_BYTES)
                    if hashlib.sha512(blob).hexdigest() != e.hex or len(blob) != e.size:
                        raise ValueError(f"store file of {e.path!r} does not match its integrity: not shared")
                    info = tarfile.TarInfo(hx)
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
            tmp.flush()
            self.objects.put_file(key, Path(tmp.name))
        with lock:
            if self._known is not None:
                self._known.add(key)
            rep.done.append(pkg.pkg_id)
            rep.bytes += total
        return total

    def _write_hot(self) -> None:
        with tempfile.NamedTemporaryFile("w", dir=self.scratch, suffix=".json") as tmp:
            json.dump(self._hot, tmp)
            tmp.flush()
            self.objects.put_file(f"hot/{self.droplet}.json", Path(tmp.name), "application/json")

    # -- warm ------------------------------------------------------------------------------------------------
    def hot_set(self, budget_bytes: int) -> tuple[list[HotPackage], int]:
        """The fleet's hot packages, most used first, as many as fit in ``budget_bytes``; and how many did not."""
        merged: dict[tuple[str, str], HotPackage] = {}
        for key in self.objects.list("hot/"):
            try:
                doc = json.loads(self.objects.open_bytes(key)[:16 * 2**20])
            except (SyncError, ValueError):
                continue  # one droplet's unreadable list costs only its own entries
            if not isinstance(doc, dict):
                continue
            for pkg_id, e in doc.items():
                name, _, version = str(pkg_id).rpartition("@")
                if not (isinstance(e, dict) and valid_package(name, version) and isinstance(e.get("integrity"), str)):
                    continue
                uses, size = e.get("uses"), e.get("bytes")
                if not isinstance(uses, int) or not isinstance(size, int):
                    continue
                k = (pkg_id, e["integrity"])
                prev = merged.get(k)
                merged[k] = HotPackage(Package(name, version, e["integrity"]), uses + (prev.uses if prev else 0),
                                       max(0, size))
        ranked = sorted(merged.values(), key=lambda h: (-h.uses, h.package.pkg_id))
        out, used, left = [], 0, 0
        for h in ranked:
            if used + h.bytes > budget_bytes:
                left += 1
                continue
            out.append(h)
            used += h.bytes
        return out, left

    def stage(self, packages: Iterable[Package], into: Path) -> tuple[dict[str, Staged], dict[str, str]]:
        """Download and verify these packages' bundles into ``into`` (nothing enters the store yet): each file's
        bytes must hash to the integrity the package's index gives it. The staged packages, and why others were
        refused."""
        staged: dict[str, Staged] = {}
        refused: dict[str, str] = {}
        lock = threading.Lock()

        def one(pkg: Package) -> None:
            try:
                st = self._stage_one(pkg, into)
            except (OSError, ValueError, SyncError, tarfile.TarError) as exc:
                with lock:
                    refused[pkg.pkg_id] = str(exc)[:300]
                return
            with lock:
                staged[pkg.pkg_id] = st

        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="store-cache") as pool:
            list(pool.map(one, [p for p in packages if not self.local.index_path(p).exists()]))
        return staged, refused

    def _stage_one(self, pkg: Package, into: Path) -> Staged:
        hx = integrity_hex(pkg.integrity)
        d = into / hx
        d.mkdir()
        bundle = d / "bundle.tar"
        try:
            self.objects.get_file(self.bundle_key(pkg), bundle)
        except NotFound:
            raise ValueError("not in the cache") from None
        index: bytes | None = None
        blobs: dict[str, int] = {}
        with tarfile.open(bundle, mode="r:") as tar:
            for m in tar:
                if not m.isfile() or m.size > MAX_FILE_BYTES:
                    raise ValueError(f"bundle entry {m.name[:80]!r} is not a regular file within the caps")
                if m.name == "index.json":
                    f = tar.extractfile(m)
                    assert f is not None
                    index = f.read(MAX_INDEX_BYTES + 1)
                    continue
                if not re.fullmatch(r"[0-9a-f]{128}", m.name):
                    raise ValueError(f"bundle entry {m.name[:80]!r} is not a sha512 name")
                f = tar.extractfile(m)
                assert f is not None
                h = hashlib.sha512()
                with open(d / m.name, "wb") as out:  # a checked hex name: no path of the bundle's choosing
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != m.name:
                    raise ValueError("a file's bytes do not match their sha512 name (poisoned or damaged object)")
                blobs[m.name] = m.size
        bundle.unlink()
        if index is None or len(index) > MAX_INDEX_BYTES:
            raise ValueError("the bundle holds no usable index")
        entries = parse_index(index, pkg)
        for e in entries:
            if blobs.get(e.hex) != e.size and not self.local.file_path(e.hex, e.executable).exists():
                raise ValueError(f"file {e.path!r}: its bytes do not match the integrity in the index (poisoned "
                                 "or damaged object)")
        return Staged(pkg, d, index, entries)

    def install_staged(self, staged: Mapping[str, Staged], trusted: Mapping[str, str],
                       budget_bytes: int | None = None) -> Report:
        """Move verified packages into the store, each only when ``trusted`` (name@version -> the integrity the
        registry's metadata gives it) names the integrity it was filed under: files first, the index last."""
        rep = Report()
        for pkg_id in sorted(staged):
            st = staged[pkg_id]
            if trusted.get(pkg_id) != st.package.integrity:
                rep.refused[pkg_id] = "integrity differs from the registry's metadata"
                continue
            if budget_bytes is not None and rep.bytes >= budget_bytes:
                rep.over_budget += 1
                continue
            try:
                rep.bytes += self._install_one(st)
                rep.done.append(pkg_id)
            except OSError as exc:
                rep.refused[pkg_id] = str(exc)[:300]
        return rep

    def _install_one(self, st: Staged) -> int:
        moved = 0
        for e in st.entries:
            final = self.local.file_path(e.hex, e.executable)
            if final.exists():
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            src = st.dir / e.hex
            tmp = final.with_name(final.name + ".part")
            shutil.copyfile(src, tmp)  # a file may serve two entries (and another fs): copy, then rename
            os.chmod(tmp, 0o755 if e.executable else 0o644)
            os.replace(tmp, final)
            moved += e.size
        # pnpm re-hashes a file whose mtime is newer than its checkedAt: stamp the import time.
        doc = json.loads(st.index)
        now = int(time.time() * 1000) + 1000
        for entry in doc["files"].values():
            entry["checkedAt"] = now
        index = self.local.index_path(st.package)
        index.parent.mkdir(parents=True, exist_ok=True)
        part = index.with_name(index.name + ".part")
        part.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(part, index)  # last: pnpm takes a package as present once its index is
        return moved

    def import_packages(self, packages: Iterable[Package], trusted: Mapping[str, str], *,
                        budget_bytes: int | None = None) -> Report:
        """`stage` then `install_staged`; packages the store already holds count as present."""
        pkgs = list(packages)
        with tempfile.TemporaryDirectory(dir=self.scratch) as td:
            staged, refused = self.stage([p for p in pkgs if trusted.get(p.pkg_id) == p.integrity], Path(td))
            rep = self.install_staged(staged, trusted, budget_bytes)
        rep.refused.update(refused)
        for p in pkgs:
            if trusted.get(p.pkg_id) != p.integrity:
                rep.refused[p.pkg_id] = "integrity differs from the registry's metadata"
            elif p.pkg_id not in staged and p.pkg_id not in refused:
                rep.present.append(p.pkg_id)
        return rep


@dataclass(frozen=True)
class Staged:
    """A package downloaded and verified, waiting outside the store for the registry's word."""

    package: Package
    dir: Path
    index: bytes
    entries: list[FileEntry]


def store_bytes(store_dir: Path) -> int:
    """Bytes of the files under a store (hard-linked files counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, names in os.walk(store_dir):
        for n in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, n))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total
