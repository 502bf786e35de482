"""Pick a backend by config name: KV (local, cloudflare), objects (local, s3), replica (postgres)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sync.cloudflare.kv import CloudflareKV
from sync.errors import ConfigError
from sync.kv import KV, LocalKV
from sync.objects import LocalObjectStore, ObjectStore, S3ObjectStore
from sync.replica import PostgresReplica, Replica

KV_BACKENDS: dict[str, Callable[..., KV]] = {"local": LocalKV, "cloudflare": CloudflareKV}
OBJECT_BACKENDS: dict[str, Callable[..., ObjectStore]] = {"local": LocalObjectStore, "s3": S3ObjectStore}
REPLICA_BACKENDS: dict[str, Callable[..., Replica]] = {"postgres": PostgresReplica}


def _make(kind: str, table: dict[str, Callable[..., Any]], name: str, options: dict[str, Any]) -> Any:
    factory = table.get(name)
    if factory is None:
        raise ConfigError(f"unknown {kind} backend {name!r}; choose one of {sorted(table)}")
    try:
        return factory(**options)
    except TypeError as exc:  # wrong or missing option names
        raise ConfigError(f"bad options for the {kind} backend {name!r}: {exc}") from exc


def make_kv(name: str, **options: Any) -> KV:
    """Build the KV backend called ``name`` from its options."""
    return _make("kv", KV_BACKENDS, name, options)  # type: ignore[no-any-return]


def make_object_store(name: str, **options: Any) -> ObjectStore:
    """Build the object backend called ``name`` from its options."""
    return _make("objects", OBJECT_BACKENDS, name, options)  # type: ignore[no-any-return]


def make_replica(name: str | None, **options: Any) -> Replica | None:
    """Build the replica called ``name``; ``none``/None/empty means no replication (returns None)."""
    if name in (None, "", "none"):
        return None
    return _make("replica", REPLICA_BACKENDS, str(name), options)  # type: ignore[no-any-return]
