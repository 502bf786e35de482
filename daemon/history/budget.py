"""What one piece of history work on one project may cost the daemon: bytes, objects, seconds.

Every size is the size the daemon would hold (an object's uncompressed length), never what the disk or a
compressed pack pays, and it is checked before the object is read: a 500 MiB blob of zeros is 500 KiB in a pack
and 500 MiB in the daemon. Past a budget the work stops with HistoryError("history_limit"), naming what and by
how much; the build that asked fails with that reason, a cleanup skips the project and goes on.
"""

from __future__ import annotations

import mmap
import time
import zlib
from dataclasses import dataclass

from dulwich.object_store import DiskObjectStore
from dulwich.objects import ObjectID

from daemon.history.errors import HistoryError

CHUNK = 64 * 1024  # how much of an object is inflated at a time while only its size is wanted
_OFS_DELTA, _REF_DELTA = 6, 7


@dataclass(frozen=True)
class Budget:
    """Limits of one operation on one project's history."""

    max_bytes: int = 256 * 2**20  # uncompressed bytes of every object read (or ingested) together
    max_object_bytes: int = 64 * 2**20  # uncompressed bytes of any one object (the dist window holds output)
    max_objects: int = 200_000
    max_seconds: float = 120.0

    def meter(self, what: str) -> Meter:
        """A fresh meter charging against this budget; `what` names the work in the error."""
        return Meter(self, what)


# Sources: the contract caps (20 MB in 500 files) plus the lockfile (32 MiB) and the daemon's own files.
SOURCES = Budget(max_bytes=64 * 2**20, max_object_bytes=33 * 2**20, max_objects=20_000, max_seconds=60.0)
# A version's build output in the dist window: the output cap (100 MB, checked before) with room, in files too.
OUTPUT = Budget(max_bytes=256 * 2**20, max_object_bytes=128 * 2**20, max_objects=100_000, max_seconds=120.0)
# Whole-repository work (prune, packs, restore): every version's sources plus the dist window's output.
REPOSITORY = Budget(max_bytes=2 * 2**30, max_object_bytes=128 * 2**20, max_objects=500_000, max_seconds=120.0)


class Meter:
    """Counts bytes, objects and seconds of one operation; raises history_limit past its budget."""

    def __init__(self, budget: Budget, what: str) -> None:
        self.budget = budget
        self.what = what
        self.bytes = 0
        self.objects = 0
        self.started = time.monotonic()

    def _fail(self, message: str) -> HistoryError:
        return HistoryError("history_limit", f"{self.what}: {message}", what=self.what)

    def charge(self, nbytes: int, objects: int = 1, name: str = "") -> None:
        """Count an object of `nbytes` about to be read; raise before it is read when it does not fit."""
        b = self.budget
        if nbytes > b.max_object_bytes:
            label = f" {name}" if name else ""
            raise self._fail(f"object{label} is {nbytes} bytes, over the {b.max_object_bytes} byte cap for one "
                             "object")
        self.bytes += nbytes
        self.objects += objects
        if self.bytes > b.max_bytes:
            raise self._fail(f"over {b.max_bytes} bytes in all (read {self.bytes})")
        if self.objects > b.max_objects:
            raise self._fail(f"over {b.max_objects} objects")
        self.tick()

    def tick(self) -> None:
        """Raise when the operation has run past its seconds."""
        if time.monotonic() - self.started > self.budget.max_seconds:
            raise self._fail(f"ran past {self.budget.max_seconds:g} s")


def _varint_size(data: bytes, pos: int) -> tuple[int, int]:
    """A delta header's little-endian base-128 size at `pos`: (size, next pos)."""
    size = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated delta header")
        c = data[pos]
        pos += 1
        size |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return size, pos


def _entry_header(data: bytes | memoryview | mmap.mmap, pos: int) -> tuple[int, int, int]:
    """A pack entry's (type, declared size, offset after the header and any delta base reference)."""
    c = data[pos]
    type_num, size, shift = (c >> 4) & 7, c & 15, 4
    pos += 1
    while c & 0x80:
        c = data[pos]
        pos += 1
        size |= (c & 0x7F) << shift
        shift += 7
    if type_num == _OFS_DELTA:
        c = data[pos]
        pos += 1
        while c & 0x80:
            c = data[pos]
            pos += 1
    elif type_num == _REF_DELTA:
        pos += 20
    return type_num, size, pos


def _delta_target_size(head: bytes) -> int:
    """The size of the object a delta makes (its second header varint), from its first inflated bytes."""
    _base, pos = _varint_size(head, 0)
    target, _ = _varint_size(head, pos)
    return target


def object_size(store: DiskObjectStore, sha: ObjectID) -> int:
    """The uncompressed size of an object, read from its pack entry or loose header without inflating it whole.

    Raises KeyError when the store lacks it.
    """
    for pack in store.packs:
        try:
            offset = pack.index.object_offset(sha)
        except KeyError:
            continue
        data = pack.data._buffer()
        type_num, size, pos = _entry_header(data, offset)
        if type_num in (_OFS_DELTA, _REF_DELTA):
            d = zlib.decompressobj()
            return _delta_target_size(d.decompress(bytes(data[pos : pos + 256]), 64))
        return size
    path = store._get_shafile_path(sha)
    try:
        with open(path, "rb") as f:
            d = zlib.decompressobj()
            head = b""
            while b"\0" not in head and len(head) < 64:
                raw = f.read(256)
                if not raw:
                    break
                head += d.decompress(raw, 64 - len(head))
    except FileNotFoundError:
        raise KeyError(sha) from None
    try:
        return int(head.split(b"\0", 1)[0].split(b" ", 1)[1])
    except (IndexError, ValueError) as exc:
        raise HistoryError("corrupt_repo", f"object {sha.decode()} has a malformed header") from exc


def scan_pack(name: str, pack: bytes, meter: Meter) -> None:
    """Walk an untrusted pack entry by entry before anything ingests it, charging each object's size.

    Sizes come from the entry headers (and a delta's target size from its first inflated bytes); every entry is
    also inflated in CHUNK pieces and counted, so a header that lies about its size cannot slip past either.
    Memory stays at one chunk whatever the pack holds. Raises HistoryError: history_limit, corrupt_pack.
    """
    view = memoryview(pack)
    try:
        if bytes(view[:4]) != b"PACK" or len(pack) < 32:
            raise ValueError("no pack header")
        count = int.from_bytes(view[8:12], "big")
        meter.charge(0, objects=count)
        pos = 12
        end = len(pack) - 20
        for _ in range(count):
            type_num, declared, pos = _entry_header(view, pos)
            is_delta = type_num in (_OFS_DELTA, _REF_DELTA)
            d = zlib.decompressobj()
            inflated = 0
            size = None if is_delta else declared
            if size is not None:
                meter.charge(size, objects=0)
            head = b""
            while not d.eof:
                # Input zlib held back (output was capped at CHUNK) goes first; then the next piece of the pack.
                if d.unconsumed_tail:
                    feed = d.unconsumed_tail
                elif pos < end:
                    feed = bytes(view[pos : min(end, pos + CHUNK)])
                    pos += len(feed)
                else:
                    feed = b""
                out = d.decompress(feed, CHUNK)
                if not feed and not out and not d.eof:
                    raise ValueError("truncated entry")
                inflated += len(out)
                if size is None:
                    head += out[:64]
                    if len(head) >= 2 or d.eof:
                        try:
                            size = _delta_target_size(head)
                            meter.charge(size, objects=0)
                        except ValueError:
                            if d.eof:
                                raise
                if inflated > declared:
                    raise ValueError(f"an entry inflates past the {declared} bytes its header declares")
                meter.tick()
            pos -= len(d.unused_data)
    except HistoryError:
        raise
    except (ValueError, IndexError, zlib.error) as exc:
        raise HistoryError("corrupt_pack", f"pack {name} is malformed: {exc}", pack=name) from exc

