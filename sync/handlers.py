"""Outbox handlers: turn batches of outbox items into calls on a Replica, a KV or an ObjectStore."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sync.errors import BatchFailure, InvalidRecord, RemoteError
from sync.kv.base import KV
from sync.objects.base import ObjectStore
from sync.outbox import OutboxItem
from sync.replica.base import Replica, validate_record
from sync.replica.usage import PostgresUsage
from sync.replica.usage import validate as validate_usage

Handler = Callable[[list[OutboxItem]], None]


def replica_handler(replica: Replica, on_refused: Callable[[list[str]], None] | None = None) -> Handler:
    """Payload: a version record (upsert) or ``{"delete": version_id}``; bad records are parked.

    A fenced replica's refusals (stale lease epoch) are delivered as done: retrying can never help.
    """

    def handle(items: list[OutboxItem]) -> None:
        good: list[OutboxItem] = []
        poison: tuple[OutboxItem, Exception] | None = None
        for item in items:
            try:
                if "delete" in item.payload:
                    if not isinstance(item.payload["delete"], str) or not item.payload["delete"]:
                        raise InvalidRecord("a replica delete needs a version_id string")
                else:
                    validate_record(item.payload)
            except InvalidRecord as exc:
                poison = (item, exc)
                break
            good.append(item)
        upserts: list[dict[str, Any]] = [i.payload for i in good if "delete" not in i.payload]
        deletes = [str(i.payload["delete"]) for i in good if "delete" in i.payload]
        try:
            refused = replica.upsert_versions(upserts)
            replica.delete_versions(deletes)
        except Exception as exc:
            raise BatchFailure(exc) from exc
        if refused and on_refused is not None:
            on_refused(list(refused))
        if poison is not None:
            raise BatchFailure(poison[1], done_ids=[i.id for i in good], poison_id=poison[0].id)

    return handle


def kv_handler(kv: KV) -> Handler:
    """Payload: ``{"key", "value": str, "ttl"}`` or ``{"key", "delete": true}``; one call per key."""

    def handle(items: list[OutboxItem]) -> None:
        done: list[int] = []
        for item in items:
            payload = item.payload
            try:
                key = payload.get("key", item.key)
                if payload.get("delete"):
                    kv.delete(key)
                else:
                    value = payload.get("value")
                    if not isinstance(value, str):
                        raise ValueError("a kv outbox payload needs a string 'value' or 'delete': true")
                    kv.put(key, value.encode("utf-8"), payload.get("ttl"))
            except RemoteError as exc:  # even auth errors are kept: the operator fixes the token, nothing is lost
                raise BatchFailure(exc, done_ids=done) from exc
            except ValueError as exc:  # bad key, TTL or value: can never succeed
                raise BatchFailure(exc, done_ids=done, poison_id=item.id) from exc
            done.append(item.id)

    return handle


class PointerFence(Protocol):
    """Where a fleet's live pointer is decided (sync.lease.PgLeases): a move under a stale epoch is refused."""

    def move_live(self, user_id: str, project_id: str, epoch: int, version_id: str,
                  undo: list[str] | None = None, redo: list[str] | None = None) -> bool: ...


def fenced_kv_handler(kv: KV, fence: PointerFence, on_refused: Callable[[str], None]) -> Handler:
    """Like `kv_handler`, but a pointer move stamped with a lease epoch is first recorded in Postgres under that
    epoch; when the epoch is stale the KV is not written (the item is done, and counted by ``on_refused``).

    Check then write: the KV has no conditional put, so a droplet that pauses between the two can still land
    one stale write; the next holder's first pointer move overwrites it (README "Fleet").
    """
    plain = kv_handler(kv)

    def handle(items: list[OutboxItem]) -> None:
        done: list[int] = []
        for item in items:
            p = item.payload
            if "epoch" in p and p.get("live_version_id"):
                try:
                    ok = fence.move_live(str(p["user_id"]), str(p["project_id"]), int(p["epoch"]),
                                         str(p["live_version_id"]), list(p.get("undo") or []),
                                         list(p.get("redo") or []))
                except RemoteError as exc:
                    raise BatchFailure(exc, done_ids=done) from exc
                if not ok:
                    on_refused(item.key)
                    done.append(item.id)
                    continue
            try:
                plain([item])
            except BatchFailure as exc:
                raise BatchFailure(exc.cause, done_ids=done, poison_id=exc.poison_id) from exc
            done.append(item.id)

    return handle


def objects_handler(store: ObjectStore) -> Handler:
    """Payload: ``{"key", "path", "content_type", "version_id"}``; a missing local file is parked."""

    def handle(items: list[OutboxItem]) -> None:
        done: list[int] = []
        for item in items:
            payload = item.payload
            try:
                path = payload.get("path")
                if not isinstance(path, str) or not path:
                    raise ValueError("an objects outbox payload needs a 'path'")
                store.put_file(payload.get("key", item.key), Path(path), payload.get("content_type"))
            except RemoteError as exc:
                raise BatchFailure(exc, done_ids=done) from exc
            except (ValueError, FileNotFoundError) as exc:
                raise BatchFailure(exc, done_ids=done, poison_id=item.id) from exc
            done.append(item.id)

    return handle


def usage_handler(store: PostgresUsage) -> Handler:
    """Payload: ``{"table": "build_usage" | "plan_assignments", "record": {...}}``; the newest of a key wins."""

    def handle(items: list[OutboxItem]) -> None:
        good: list[OutboxItem] = []
        poison: tuple[OutboxItem, Exception] | None = None
        for item in items:
            try:
                validate_usage(str(item.payload.get("table")), item.payload.get("record"))
            except InvalidRecord as exc:
                poison = (item, exc)
                break
            good.append(item)
        try:
            for table in ("plan_assignments", "build_usage"):
                store.upsert(table, [i.payload["record"] for i in good if i.payload["table"] == table])
        except Exception as exc:
            raise BatchFailure(exc) from exc
        if poison is not None:
            raise BatchFailure(poison[1], done_ids=[i.id for i in good], poison_id=poison[0].id)

    return handle
