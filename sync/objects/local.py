"""LocalObjectStore: the embedded object backend, a folder laid out exactly like the bucket.

Layout under ``root``: ``<key>`` for STANDARD objects; any other storage class (``archive``) lives at
``_archive/<key>``, a mirror of the same layout; ``_tmp/`` holds in-flight writes (renamed into place, so a
reader never sees a partial file). Keys whose first segment is ``_archive``, ``_tmp`` or any other name reserved
by sync.names are therefore rejected (the same table refuses those names as user ids). ``url`` is the
``file://`` URI of the object's current location. ``content_type`` is accepted and ignored (a filesystem has
nowhere to keep it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from sync.errors import InvalidKey, NotFound
from sync.names import STORE_ARCHIVE_DIR as ARCHIVE_DIR
from sync.names import STORE_DIRS as RESERVED
from sync.names import STORE_TMP_DIR as TMP_DIR
from sync.objects.base import normalize_storage_class, validate_object_key, validate_prefix


def _check(key: str) -> str:
    return validate_object_key(key)


class LocalObjectStore:
    """Objects as files under ``root``; writes go through ``_tmp/`` and an atomic rename."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)

    def _standard(self, key: str) -> Path:
        return self.root / key

    def _archived(self, key: str) -> Path:
        return self.root / ARCHIVE_DIR / key

    def _locate(self, key: str) -> Path | None:
        for path in (self._standard(key), self._archived(key)):
            if path.is_file():
                return path
        return None

    def _prune(self, path: Path, stop: Path) -> None:
        """Remove empty parent folders up to ``stop`` so deleted objects leave no husks."""
        parent = path.parent
        while parent != stop and stop in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _place(self, src: Path, final: Path, key: str, *, discard_src: bool) -> None:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.is_dir():
                raise IsADirectoryError(str(final))
            os.replace(src, final)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            if discard_src:
                src.unlink(missing_ok=True)
            raise InvalidKey(f"object key {key!r} collides with another key's folder") from exc

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Copy ``path`` into the store as ``key`` (STANDARD class)."""
        _check(key)
        src = Path(path)
        if not src.is_file():
            raise FileNotFoundError(f"no such file to upload: {src}")
        tmp = self.root / TMP_DIR / f"{uuid.uuid4().hex}.part"
        try:
            with src.open("rb") as fin, tmp.open("wb") as fout:
                shutil.copyfileobj(fin, fout, 1024 * 1024)
                fout.flush()
                os.fsync(fout.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._place(tmp, self._standard(key), key, discard_src=True)
        archived = self._archived(key)
        if archived.is_file():  # a fresh put is STANDARD, as on S3
            archived.unlink()
            self._prune(archived, self.root / ARCHIVE_DIR)

    def get_file(self, key: str, dest: Path) -> None:
        """Copy ``key`` to ``dest`` through a temp file beside it."""
        _check(key)
        src = self._locate(key)
        if src is None:
            raise NotFound(f"no object {key!r}")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except FileNotFoundError as exc:  # deleted under our feet
            tmp.unlink(missing_ok=True)
            raise NotFound(f"no object {key!r}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists in either class."""
        _check(key)
        return self._locate(key) is not None

    def delete(self, key: str) -> None:
        """Remove ``key`` from both classes; missing is fine."""
        _check(key)
        for path, stop in ((self._standard(key), self.root), (self._archived(key), self.root / ARCHIVE_DIR)):
            if path.is_file():
                path.unlink(missing_ok=True)
                self._prune(path, stop)

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` in either class, sorted."""
        validate_prefix(prefix)
        found: set[str] = set()
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        for base in (self.root, self.root / ARCHIVE_DIR):
            start = base / folder if folder else base
            if not start.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(start):
                if Path(dirpath) == self.root:
                    dirnames[:] = [d for d in dirnames if d not in RESERVED]
                for filename in filenames:
                    key = (Path(dirpath) / filename).relative_to(base).as_posix()
                    if key.startswith(prefix):
                        found.add(key)
        return sorted(found)

    def url(self, key: str) -> str:
        """``file://`` URI of where the object lives now (its STANDARD place when missing)."""
        _check(key)
        return (self._locate(key) or self._standard(key)).as_uri()

    def set_storage_class(self, key: str, cls: str) -> None:
        """STANDARD keeps the file at ``<key>``; any other class moves it to ``_archive/<key>``."""
        _check(key)
        target_cls = normalize_storage_class(cls)
        src = self._locate(key)
        if src is None:
            raise NotFound(f"no object {key!r}")
        final = self._standard(key) if target_cls == "STANDARD" else self._archived(key)
        if src == final:
            return
        self._place(src, final, key, discard_src=False)
        self._prune(src, self.root if src == self._standard(key) else self.root / ARCHIVE_DIR)

    def open_bytes(self, key: str) -> bytes:
        """Read a small object whole."""
        _check(key)
        src = self._locate(key)
        if src is None:
            raise NotFound(f"no object {key!r}")
        try:
            return src.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no object {key!r}") from exc
