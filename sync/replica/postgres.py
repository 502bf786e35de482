"""PostgresReplica: version rows in the seed's ProjectVersions table via psycopg 3; reconnects."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sync.errors import ConfigError, RemoteError
from sync.replica.base import OPTIONAL_TIMES, RECORD_FIELDS, STATUSES, format_time, parse_time, validate_record

log = logging.getLogger(__name__)
T = TypeVar("T")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

# Each migration is a list of statements with {schema}, {table}, {status_type} and {prefix} placeholders.
MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_create_project_versions",
        [
            "DO $$ BEGIN CREATE TYPE {schema}.{status_type} AS ENUM ({statuses}); "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            """CREATE TABLE IF NOT EXISTS {schema}.{table} (
                id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                user_id text NOT NULL,
                project_id text NOT NULL,
                version_id text NOT NULL UNIQUE,
                prompt text,
                parent_version_id text,
                preview_url text,
                artifact_url text,
                framework text,
                build_duration_ms integer,
                output_size_bytes integer,
                claude_json jsonb,
                status {schema}.{status_type} NOT NULL DEFAULT 'queued',
                needs_rebuild boolean NOT NULL DEFAULT false,
                base_snapshot_id text,
                cf_deployment_id text,
                node_version text,
                pnpm_version text,
                created_at timestamptz NOT NULL DEFAULT now()
            )""",
            "CREATE INDEX IF NOT EXISTS {idx_user_project} ON {schema}.{table} (user_id, project_id)",
            "CREATE INDEX IF NOT EXISTS {idx_project_version} ON {schema}.{table} (project_id, version_id)",
            "CREATE INDEX IF NOT EXISTS {idx_user_project_created} "
            "ON {schema}.{table} (user_id, project_id, created_at DESC)",
        ],
    ),
    (
        "0002_daemon_columns",
        [
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS failure_reason text",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS pinned boolean NOT NULL DEFAULT false",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS rollback_of text",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS archived_at timestamptz",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now()",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS row_version bigint NOT NULL DEFAULT 0",
        ],
    ),
    (
        "0003_checks_and_timings",
        [
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS checks jsonb",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS timings jsonb",
        ],
    ),
    (
        # A fleet's fencing (sync/lease.py): each row carries the lease epoch that wrote it, and one row per
        # project holds its lease and its live version (the pointer the KV mirrors).
        "0004_fleet_leases",
        [
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0",
            """CREATE TABLE IF NOT EXISTS {schema}.{leases} (
                user_id text NOT NULL,
                project_id text NOT NULL,
                holder text NOT NULL,
                epoch bigint NOT NULL,
                expires_at timestamptz NOT NULL,
                acquired_at timestamptz NOT NULL DEFAULT now(),
                live_version_id text,
                undo_stack jsonb NOT NULL DEFAULT '[]',
                redo_stack jsonb NOT NULL DEFAULT '[]',
                PRIMARY KEY (user_id, project_id)
            )""",
            """CREATE TABLE IF NOT EXISTS {schema}.{droplets} (
                droplet_id text PRIMARY KEY,
                seen_at timestamptz NOT NULL DEFAULT now(),
                draining boolean NOT NULL DEFAULT false,
                leases_held integer NOT NULL DEFAULT 0,
                takeovers bigint NOT NULL DEFAULT 0,
                fencing_refusals bigint NOT NULL DEFAULT 0
            )""",
        ],
    ),
    (
        # A workspace's built package (a monorepo's target): a restore onto an empty data dir keeps it.
        "0005_target_package",
        ["ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS target_package text"],
    ),
    (
        # The retention's tombstone: a deleted preview stays deleted on every droplet (daemon/ops/retention.py).
        "0006_preview_deleted_at",
        ["ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS preview_deleted_at timestamptz"],
    ),
    (
        # The repair loop (daemon/intake/repair.py): an attempt's root failure and number, the loop's outcome on
        # the root, the diagnostics a failed version hands the generator.
        "0007_repair",
        [
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS repair_of text",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS repair_attempt integer",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS repair jsonb",
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS repair_request jsonb",
        ],
    ),
    (
        # A fleet's live alias redeploys (sync/replica/usage.py): one row per redeploy, written under the lease
        # epoch before the platform is asked, so a droplet taking the project over knows what the branch holds;
        # counted as Pages deployments in the fleet's quotas and export.
        "0008_fleet_quotas_alias",
        [
            """CREATE TABLE IF NOT EXISTS {schema}.{redeploys} (
                redeploy_id text PRIMARY KEY,
                user_id text NOT NULL,
                project_id text NOT NULL,
                version_id text NOT NULL,
                over text,
                month text NOT NULL,
                epoch bigint NOT NULL,
                holder text NOT NULL,
                state text NOT NULL DEFAULT 'pending',
                deployment_id text,
                error text,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                done_at timestamptz,
                deleted_at timestamptz
            )""",
            "CREATE INDEX IF NOT EXISTS {redeploys_project_idx} ON {schema}.{redeploys} (user_id, project_id)",
            "CREATE INDEX IF NOT EXISTS {redeploys_month_idx} ON {schema}.{redeploys} (user_id, month)",
        ],
    ),
]


class PostgresReplica:
    """The replica in ``<schema>.<table>``; one connection, reopened after any drop."""

    name = "postgres"

    def __init__(
        self, dsn: str, *, table: str = "project_versions", schema: str = "public", connect_timeout_s: int = 5
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise ConfigError("PostgresReplica needs a DSN")
        for label, ident in (("table", table), ("schema", schema)):
            if not isinstance(ident, str) or not _IDENT.match(ident):
                raise ConfigError(f"{label} name {ident!r} must match {_IDENT.pattern}")
        self._dsn = dsn
        self.table = table
        self.schema = schema
        self._connect_timeout = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()
        self._schema_ready = False
        self.fencing_refusals = 0  # records refused because a newer lease epoch holds their project
        self._names = {
            "schema": sql.Identifier(schema),
            "table": sql.Identifier(table),
            "leases": sql.Identifier(f"{table}_leases"),
            "droplets": sql.Identifier(f"{table}_droplets"),
            "redeploys": sql.Identifier(f"{table}_alias_redeploys"),
            "redeploys_project_idx": sql.Identifier(f"{table}_alias_redeploys_project_idx"),
            "redeploys_month_idx": sql.Identifier(f"{table}_alias_redeploys_month_idx"),
            "status_type": sql.Identifier(f"{table}_status"),
            "idx_user_project": sql.Identifier(f"{table}_user_project_idx"),
            "idx_project_version": sql.Identifier(f"{table}_project_version_idx"),
            "idx_user_project_created": sql.Identifier(f"{table}_user_project_created_idx"),
            "statuses": sql.SQL(", ").join(sql.Literal(s) for s in STATUSES),
        }

    def __repr__(self) -> str:  # the DSN may hold a password
        return f"PostgresReplica(table={self.schema}.{self.table})"

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(**self._names)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            row_factory=dict_row,
            keepalives=1,
            keepalives_idle=30,
        )

    def run(self, operation: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on this replica's connection (migrated first); the lease store shares the retry policy."""
        return self._run(operation, fn)

    def sql(self, text: str) -> sql.Composed:
        """``text`` with the schema, table and lease table names filled in."""
        return self._sql(text)

    def _run(self, operation: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on a live connection; a stale connection gets one fresh retry, then RemoteError."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed or self._conn.broken
                try:
                    if fresh:
                        self._drop()
                        self._conn = self._connect()
                    assert self._conn is not None
                    if not self._schema_ready and operation != "pg ensure_schema":
                        self._migrate(self._conn)
                    return fn(self._conn)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._drop()
                    if attempt == 1 and not fresh:
                        log.info("postgres replica: connection lost (%s), reconnecting", type(exc).__name__)
                        continue
                    raise RemoteError(
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                        operation=operation,
                        retryable=True,
                        code="remote_unavailable",
                        hint="check that PostgreSQL is up and the DSN is right",
                    ) from exc
                except psycopg.Error as exc:
                    raise RemoteError(
                        f"{type(exc).__name__}: {str(exc).strip()}", operation=operation, retryable=False
                    ) from exc
            raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Apply pending migrations under an advisory lock so racing droplets apply each exactly once."""
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"previewd-migrate:{self.schema}.{self.table}",),
            )
            conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {schema}"))
            conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations "
                    "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
            )
            rows = conn.execute(self._sql("SELECT name FROM {schema}.schema_migrations")).fetchall()
            done = {r["name"] for r in rows}
            for name, statements in MIGRATIONS:
                full_name = f"{self.table}/{name}"
                if full_name in done:
                    continue
                for statement in statements:
                    conn.execute(self._sql(statement))
                conn.execute(self._sql("INSERT INTO {schema}.schema_migrations (name) VALUES (%s)"), (full_name,))
        self._schema_ready = True

    def ensure_schema(self) -> None:
        """Create the schema, enum, table and indexes when missing; record each migration once."""
        self._run("pg ensure_schema", self._migrate)

    def upsert_versions(self, records: list[dict[str, Any]]) -> list[str]:
        """Upsert on version_id; an existing row changes only when the new row_version is higher.

        A record carrying ``epoch`` is fenced: refused (its id returned, counted) when the project's lease epoch
        is newer, and never overwrites a row written under a newer epoch.
        """
        rows = [self._params(validate_record(r)) for r in records]
        if not rows:
            return []
        columns = sql.SQL(", ").join(sql.Identifier(f) for f in RECORD_FIELDS)
        values = sql.SQL(", ").join(sql.Placeholder() for _ in RECORD_FIELDS)
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(f)) for f in RECORD_FIELDS if f != "version_id"
        )
        query = sql.SQL(
            "INSERT INTO {schema}.{table} AS t ({columns}, epoch) VALUES ({values}, %s) "
            "ON CONFLICT (version_id) DO UPDATE SET {updates}, epoch = EXCLUDED.epoch "
            "WHERE t.row_version < EXCLUDED.row_version AND t.epoch <= EXCLUDED.epoch"
        ).format(columns=columns, values=values, updates=updates, **self._names)
        # A fenced record (it carries the epoch of the lease it was written under) goes in only while no newer
        # lease holds its project; FOR SHARE makes a concurrent takeover wait until this transaction commits,
        # so the new holder's catch-up reads every row written under the old epoch.
        lease_q = self._sql("SELECT epoch FROM {schema}.{leases} WHERE user_id = %s AND project_id = %s FOR SHARE")
        fenced = [(r, row) for r, row in zip(records, rows, strict=True)]

        def work(conn: psycopg.Connection[Any]) -> list[str]:
            refused: list[str] = []
            with conn.transaction(), conn.cursor() as cur:
                current: dict[tuple[str, str], int] = {}
                ok: list[list[Any]] = []
                for rec, row in fenced:
                    epoch = rec.get("epoch")
                    if epoch is not None:
                        key = (rec["user_id"], rec["project_id"])
                        if key not in current:
                            got = cur.execute(lease_q, key).fetchone()
                            current[key] = int(got["epoch"]) if got else 0
                        if int(epoch) < current[key]:
                            refused.append(rec["version_id"])
                            continue
                    ok.append([*row, int(epoch or 0)])
                if ok:
                    cur.executemany(query, ok)
            return refused

        refused = self._run("pg upsert", work)
        if refused:
            self.fencing_refusals += len(refused)
            log.warning("postgres replica: refused %d stale-epoch record(s): %s", len(refused), ", ".join(refused))
        return refused

    @staticmethod
    def _params(record: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for field in RECORD_FIELDS:
            value = record[field]
            if field in ("claude_json", "checks", "timings", "repair", "repair_request") and value is not None:
                value = Jsonb(value)
            elif field in ("created_at", "updated_at") or (field in OPTIONAL_TIMES and value is not None):
                value = parse_time(value, field)
            out.append(value)
        return out

    def delete_versions(self, version_ids: list[str]) -> None:
        """Delete rows by version_id; unknown ids are ignored."""
        ids = [str(v) for v in version_ids]
        if not ids:
            return
        query = self._sql("DELETE FROM {schema}.{table} WHERE version_id = ANY(%s)")
        self._run("pg delete", lambda conn: conn.execute(query, (ids,)))

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        record = {f: row[f] for f in RECORD_FIELDS}
        for field in ("created_at", "updated_at", *OPTIONAL_TIMES):
            record[field] = format_time(record[field])
        record["status"] = str(record["status"])
        return record

    def fetch_versions(self, user_id: str, project_id: str) -> list[dict[str, Any]]:
        """One project's records, oldest first."""
        columns = sql.SQL(", ").join(sql.Identifier(f) for f in RECORD_FIELDS)
        query = sql.SQL(
            "SELECT {columns} FROM {schema}.{table} WHERE user_id = %s AND project_id = %s "
            "ORDER BY created_at, version_id"
        ).format(columns=columns, **self._names)
        rows = self._run("pg fetch", lambda conn: conn.execute(query, (user_id, project_id)).fetchall())
        return [self._record(r) for r in rows]

    def get_version(self, version_id: str) -> dict[str, Any] | None:
        """One record by version_id, or None."""
        columns = sql.SQL(", ").join(sql.Identifier(f) for f in RECORD_FIELDS)
        query = sql.SQL("SELECT {columns} FROM {schema}.{table} WHERE version_id = %s").format(
            columns=columns, **self._names
        )
        row = self._run("pg get", lambda conn: conn.execute(query, (version_id,)).fetchone())
        return self._record(row) if row else None

    def all_versions(self) -> list[dict[str, Any]]:
        """Every record in the table (for ``sync --verify``), oldest first."""
        columns = sql.SQL(", ").join(sql.Identifier(f) for f in RECORD_FIELDS)
        query = sql.SQL("SELECT {columns} FROM {schema}.{table} ORDER BY created_at, version_id").format(
            columns=columns, **self._names
        )
        return [self._record(r) for r in self._run("pg fetch all", lambda conn: conn.execute(query).fetchall())]

    def deleted_previews(self, version_ids: list[str]) -> list[str]:
        """Which of these versions carry the retention's tombstone (``preview_deleted_at``), sorted."""
        ids = sorted({str(v) for v in version_ids})
        if not ids:
            return []
        query = self._sql("SELECT version_id FROM {schema}.{table} WHERE version_id = ANY(%s) "
                          "AND preview_deleted_at IS NOT NULL ORDER BY version_id")
        rows = self._run("pg deleted previews", lambda conn: conn.execute(query, (ids,)).fetchall())
        return [str(r["version_id"]) for r in rows]

    def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        with self._lock:
            self._drop()
