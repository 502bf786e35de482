"""Per-project leases in Postgres: one writer per project, fenced by an epoch that grows when the holder changes.

One row per project in ``<schema>.<table>_leases`` (holder, epoch, expiry, and the project's live version and
undo/redo stacks, the pointer the KV mirrors). Every change is one conditional statement (``INSERT ... ON
CONFLICT DO UPDATE ... WHERE``, ``UPDATE ... WHERE epoch = ... RETURNING``), so Postgres' row lock decides every
race; no advisory lock is held across a build (a connection drop would free it silently). Why, in README "Fleet".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.errors import SyncError
from sync.replica.postgres import PostgresReplica


@dataclass(frozen=True)
class Lease:
    """A lease this droplet holds: ``epoch`` fences its writes; ``previous`` is the holder it took over from."""

    user_id: str
    project_id: str
    holder: str
    epoch: int
    expires_at: datetime
    previous: str | None = None
    live_version_id: str | None = None
    undo: tuple[str, ...] = ()
    redo: tuple[str, ...] = ()

    @property
    def takeover(self) -> bool:
        """True when another droplet held this project before (its copy here may be stale)."""
        return self.previous is not None and self.previous != self.holder


class LeaseHeld(SyncError):
    """Another live droplet holds the project's lease."""

    code = "project_elsewhere"

    def __init__(self, user_id: str, project_id: str, holder: str, expires_at: datetime | None) -> None:
        super().__init__(f"project {user_id}/{project_id} is leased by droplet {holder}")
        self.holder = holder
        self.expires_at = expires_at


def _stack(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(str(x) for x in value or ())


class PgLeases:
    """The lease table of one replica (same DSN, schema and table prefix); its own connection."""

    def __init__(self, dsn: str, *, table: str = "project_versions", schema: str = "public") -> None:
        self._pg = PostgresReplica(dsn, table=table, schema=schema)

    def ensure_schema(self) -> None:
        """Create the lease table (the replica's migration 0003) when missing."""
        self._pg.ensure_schema()

    def acquire(self, user_id: str, project_id: str, holder: str, ttl_s: float) -> Lease:
        """Take or renew the project's lease; LeaseHeld when another droplet's lease has not expired.

        The epoch grows by one whenever the holder changes, so every write of an earlier holder is stale.
        A holder retaking its own expired lease keeps its epoch: nobody else wrote in between.
        """
        q = self._pg.sql(
            "WITH prev AS (SELECT holder FROM {schema}.{leases} WHERE user_id = %(u)s AND project_id = %(p)s) "
            "INSERT INTO {schema}.{leases} AS l (user_id, project_id, holder, epoch, expires_at) "
            "VALUES (%(u)s, %(p)s, %(h)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s)) "
            "ON CONFLICT (user_id, project_id) DO UPDATE SET "
            "epoch = CASE WHEN l.holder = EXCLUDED.holder THEN l.epoch ELSE l.epoch + 1 END, "
            "acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE clock_timestamp() END, "
            "holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at "
            "WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp() "
            "RETURNING l.epoch, l.expires_at, l.live_version_id, l.undo_stack, l.redo_stack, "
            "(SELECT holder FROM prev) AS previous")
        args = {"u": user_id, "p": project_id, "h": holder, "ttl": float(ttl_s)}
        row = self._pg.run("pg lease acquire", lambda c: c.execute(q, args).fetchone())
        if row is None:
            cur = self.current(user_id, project_id)
            raise LeaseHeld(user_id, project_id, cur["holder"] if cur else "?", cur["expires_at"] if cur else None)
        return Lease(user_id, project_id, holder, int(row["epoch"]), row["expires_at"], row["previous"],
                     row["live_version_id"], _stack(row["undo_stack"]), _stack(row["redo_stack"]))

    def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        """Extend a held lease; None when it is no longer ours at that epoch (taken over: stop writing)."""
        q = self._pg.sql(
            "UPDATE {schema}.{leases} SET expires_at = clock_timestamp() + make_interval(secs => %s) "
            "WHERE user_id = %s AND project_id = %s AND holder = %s AND epoch = %s RETURNING expires_at")
        args = (float(ttl_s), lease.user_id, lease.project_id, lease.holder, lease.epoch)
        row = self._pg.run("pg lease renew", lambda c: c.execute(q, args).fetchone())
        if row is None:
            return None
        return Lease(lease.user_id, lease.project_id, lease.holder, lease.epoch, row["expires_at"], lease.previous,
                     lease.live_version_id, lease.undo, lease.redo)

    def release(self, lease: Lease) -> bool:
        """Let the lease expire now (holder and epoch stay, so a later holder's epoch still grows)."""
        q = self._pg.sql(
            "UPDATE {schema}.{leases} SET expires_at = clock_timestamp() "
            "WHERE user_id = %s AND project_id = %s AND holder = %s AND epoch = %s RETURNING epoch")
        args = (lease.user_id, lease.project_id, lease.holder, lease.epoch)
        return self._pg.run("pg lease release", lambda c: c.execute(q, args).fetchone()) is not None

    def move_live(self, user_id: str, project_id: str, epoch: int, version_id: str,
                  undo: list[str] | None = None, redo: list[str] | None = None) -> bool:
        """Record the project's live version (and stacks) under ``epoch``; False when that epoch is stale."""
        q = self._pg.sql(
            "UPDATE {schema}.{leases} SET live_version_id = %s, undo_stack = COALESCE(%s::jsonb, undo_stack), "
            "redo_stack = COALESCE(%s::jsonb, redo_stack) "
            "WHERE user_id = %s AND project_id = %s AND epoch = %s RETURNING epoch")
        args = (version_id, None if undo is None else json.dumps(undo), None if redo is None else json.dumps(redo),
                user_id, project_id, int(epoch))
        return self._pg.run("pg lease move_live", lambda c: c.execute(q, args).fetchone()) is not None

    def current(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The project's lease row (holder, epoch, expires_at, live, stacks, ``live_now``), or None."""
        q = self._pg.sql(
            "SELECT holder, epoch, expires_at, live_version_id, undo_stack, redo_stack, "
            "expires_at > clock_timestamp() AS live_now FROM {schema}.{leases} "
            "WHERE user_id = %s AND project_id = %s")
        row = self._pg.run("pg lease read", lambda c: c.execute(q, (user_id, project_id)).fetchone())
        return dict(row) if row else None

    def leases(self) -> list[dict[str, Any]]:
        """Every lease row (for ``daemonctl fleet`` and the drill's checks)."""
        q = self._pg.sql(
            "SELECT user_id, project_id, holder, epoch, expires_at, live_version_id, "
            "expires_at > clock_timestamp() AS live_now FROM {schema}.{leases} ORDER BY user_id, project_id")
        return [dict(r) for r in self._pg.run("pg lease list", lambda c: c.execute(q).fetchall())]

    def heartbeat(self, droplet_id: str, *, draining: bool, held: int, takeovers: int, refusals: int) -> None:
        """Record this droplet as seen now, with its counters (``daemonctl fleet`` lists them)."""
        q = self._pg.sql(
            "INSERT INTO {schema}.{droplets} (droplet_id, seen_at, draining, leases_held, takeovers, "
            "fencing_refusals) VALUES (%s, clock_timestamp(), %s, %s, %s, %s) ON CONFLICT (droplet_id) DO UPDATE SET "
            "seen_at = EXCLUDED.seen_at, draining = EXCLUDED.draining, leases_held = EXCLUDED.leases_held, "
            "takeovers = EXCLUDED.takeovers, fencing_refusals = EXCLUDED.fencing_refusals")
        self._pg.run("pg heartbeat", lambda c: c.execute(q, (droplet_id, draining, held, takeovers, refusals)))

    def droplets(self) -> list[dict[str, Any]]:
        """Every droplet seen, newest first, with seconds since it was seen."""
        q = self._pg.sql(
            "SELECT droplet_id, seen_at, draining, leases_held, takeovers, fencing_refusals, "
            "EXTRACT(EPOCH FROM clock_timestamp() - seen_at)::float AS seen_ago_s FROM {schema}.{droplets} "
            "ORDER BY seen_at DESC")
        return [dict(r) for r in self._pg.run("pg droplets", lambda c: c.execute(q).fetchall())]

    def close(self) -> None:
        """Drop the connection."""
        self._pg.close()

