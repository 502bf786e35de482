"""The KV seam: the Protocol every key-value backend honours, key rules and the seed's pointer format."""

from __future__ import annotations

import json
from typing import Any, Protocol

from sync.errors import InvalidKey
from sync.names import ID_RULE, valid_id

MAX_KEY_BYTES = 512
MIN_TTL_SECONDS = 60  # Workers KV rejects a smaller expiration_ttl; the local backend follows suit


class KV(Protocol):
    """A key-value store of bytes with optional expiry.

    Contract (every backend): keys follow ``validate_key`` and a bad key raises ``InvalidKey`` (a ValueError)
    before any I/O; ``ttl_seconds`` is None (no expiry) or an int >= 60, else ValueError. An expired key is
    absent everywhere. ``get`` of a missing key returns None; ``delete`` of a missing key succeeds. Remote
    failures raise ``sync.errors.RemoteError`` with ``retryable`` set.
    """

    name: str  # for logs and status reports only: callers ask ``answers_locally``, never the name

    answers_locally: bool
    """The store lives on this machine: a write is cheap enough to drain at once (reads right after see it) and
    ``get_nowait`` answers without the network."""

    def get(self, key: str) -> bytes | None:
        """Return the value, or None when the key is missing or expired."""
        ...

    def get_nowait(self, key: str) -> bytes | None:
        """Like ``get`` for an event loop; BlockingIOError when answering would wait (always, for a remote store)."""
        ...

    def put(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        """Store ``value`` under ``key``, replacing any earlier value."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; succeeds when it is already gone."""
        ...

    def keys(self, prefix: str = "") -> list[str]:
        """Return the live keys starting with ``prefix``, sorted."""
        ...


def validate_key(key: object) -> str:
    """Return ``key`` when it is a valid KV key (non-empty, <= 512 UTF-8 bytes, not ``.``/``..``)."""
    if not isinstance(key, str) or not key:
        raise InvalidKey("a KV key must be a non-empty string")
    if key in (".", ".."):
        raise InvalidKey(f"the KV key {key!r} is reserved")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"a KV key may hold at most {MAX_KEY_BYTES} UTF-8 bytes")
    return key


def validate_ttl(ttl_seconds: object) -> int | None:
    """Return the TTL when it is None or an int >= 60, else raise ValueError."""
    if ttl_seconds is None:
        return None
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < MIN_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be None or an integer >= {MIN_TTL_SECONDS}, got {ttl_seconds!r}")
    return ttl_seconds


def pointer_key(user_id: str, project_id: str) -> str:
    """The seed's KV key for a project's live pointer: ``userId:projectId`` (both ids by sync.names' rule)."""
    if not valid_id(user_id) or not valid_id(project_id):
        raise InvalidKey(f"user_id and project_id must be ids ({ID_RULE}): {user_id!r}, {project_id!r}")
    return validate_key(f"{user_id}:{project_id}")


def encode_pointer(latest_version_id: str, preview_url: str, timestamp_ms: int) -> bytes:
    """Encode the seed's pointer value ``{latestVersionId, previewUrl, timestamp}`` as compact JSON bytes."""
    if not isinstance(latest_version_id, str) or not latest_version_id:
        raise ValueError("latest_version_id must be a non-empty string")
    if not isinstance(preview_url, str):
        raise ValueError("preview_url must be a string")
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms < 0:
        raise ValueError("timestamp_ms must be a non-negative integer (milliseconds since the epoch)")
    body = {"latestVersionId": latest_version_id, "previewUrl": preview_url, "timestamp": timestamp_ms}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode_pointer(raw: bytes) -> dict[str, Any]:
    """Decode a pointer value; raise ValueError when it is not the seed's shape."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"pointer value is not JSON: {exc}") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("latestVersionId"), str)
        or not isinstance(data.get("previewUrl"), str)
        or isinstance(data.get("timestamp"), bool)
        or not isinstance(data.get("timestamp"), int)
    ):
        raise ValueError("pointer value must be {latestVersionId: str, previewUrl: str, timestamp: int}")
    return {k: data[k] for k in ("latestVersionId", "previewUrl", "timestamp")}
