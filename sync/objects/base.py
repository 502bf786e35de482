"""The ObjectStore seam: the Protocol every object backend honours, plus key and storage-class rules."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sync.errors import InvalidKey
from sync.names import key_owner_reserved

MAX_KEY_BYTES = 1024

# Canonical class names; "archive" is our alias for the cheap infrequent-access tier (R2 has only this one).
STORAGE_CLASSES = {
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
}
ALIASES = {"standard": "STANDARD", "archive": "STANDARD_IA"}


class ObjectStore(Protocol):
    """A bucket of files addressed by ``/``-separated keys.

    Contract (every backend): keys follow ``validate_key`` and a bad key raises ``InvalidKey`` (a ValueError)
    before any I/O. ``put_file`` replaces the object atomically (a reader sees the old or the new bytes,
    never a part); ``get_file`` writes ``dest`` atomically. Reading a missing object raises
    ``sync.errors.NotFound``; ``delete`` of a missing object succeeds. ``list`` returns the keys under a
    prefix, sorted. Remote failures raise ``sync.errors.RemoteError`` with ``retryable`` set.
    """

    name: str

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Upload the local file ``path`` as ``key``."""
        ...

    def get_file(self, key: str, dest: Path) -> None:
        """Download ``key`` into ``dest`` (parents created)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (in any storage class)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; succeeds when it is already gone."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        ...

    def url(self, key: str) -> str:
        """A URL naming the object (``file://`` or ``s3://``), for ``artifact_url``."""
        ...

    def set_storage_class(self, key: str, cls: str) -> None:
        """Move ``key`` to storage class ``cls`` (see ``normalize_storage_class``)."""
        ...

    def open_bytes(self, key: str) -> bytes:
        """Return a small object's bytes."""
        ...


def validate_key(key: object) -> str:
    """Return ``key`` when valid: non-empty, no leading ``/``, no empty/``.``/``..`` segment, no ``\\``."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("an object key must be a non-empty string")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} must not start with '/'")
    if "\\" in key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKey(f"object key {key!r} holds a backslash or a control character")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' segment")
    return key


def validate_object_key(key: object) -> str:
    """``validate_key``, and the key's first segment (its owner: every key starts with a user id) is no name
    reserved by sync.names, the table the id validator uses too: no user's object lands in a store's own folder."""
    validate_key(key)
    assert isinstance(key, str)
    if key_owner_reserved(key):
        raise InvalidKey(f"object key {key!r} starts with a reserved name (sync.names)")
    return key


def validate_prefix(prefix: object) -> str:
    """Return a listing prefix: empty, or a key-like string that may end with ``/``."""
    if not isinstance(prefix, str):
        raise InvalidKey("a prefix must be a string")
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") and len(prefix) > 1 else prefix)
    return prefix


def normalize_storage_class(cls: object) -> str:
    """Map ``standard``/``archive`` or an S3 class name to the canonical S3 name; ValueError otherwise."""
    if isinstance(cls, str):
        if cls in ALIASES:
            return ALIASES[cls]
        if cls.upper() in STORAGE_CLASSES:
            return cls.upper()
    raise ValueError(f"unknown storage class {cls!r}; use standard, archive or one of {sorted(STORAGE_CLASSES)}")
