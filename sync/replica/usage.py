"""PostgresUsage: plan assignments and per-build usage meters in Postgres, so a fleet can bill from one place.

Every meter row is keyed by its version id and upserted only forward (row_version), so re-sending a batch or two
droplets reporting the same build never counts it twice: a month's usage is a SUM over `build_usage`.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from sync.errors import ConfigError, InvalidRecord
from sync.replica.postgres import PostgresReplica

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

METER_FIELDS = ("version_id", "user_id", "org_id", "project_id", "month", "plan", "kind", "cpu_seconds",
                "stored_bytes", "pages_deployment", "finished", "created_at", "row_version", "tokens")
ASSIGNMENT_FIELDS = ("subject", "kind", "id", "plan", "updated_at", "row_version")

SCHEMA = [
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {schema}.{meters} (
        version_id text PRIMARY KEY, user_id text NOT NULL, org_id text, project_id text NOT NULL,
        month text NOT NULL, plan text, kind text NOT NULL, cpu_seconds double precision NOT NULL DEFAULT 0,
        stored_bytes bigint NOT NULL DEFAULT 0, pages_deployment boolean NOT NULL DEFAULT false,
        finished boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL, row_version bigint NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {meters_idx} ON {schema}.{meters} (user_id, month)",
    # The generator's tokens per build (the repair budget; README "Repair"): added to an older table too.
    "ALTER TABLE {schema}.{meters} ADD COLUMN IF NOT EXISTS tokens bigint NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS {schema}.{plans} (
        subject text PRIMARY KEY, kind text NOT NULL, id text NOT NULL, plan text NOT NULL,
        updated_at timestamptz NOT NULL, row_version bigint NOT NULL)""",
]


def validate(table: str, record: Any) -> dict[str, Any]:
    """Check one usage outbox record's keys; InvalidRecord otherwise (it can never succeed: parked)."""
    fields = {"build_usage": METER_FIELDS, "plan_assignments": ASSIGNMENT_FIELDS}.get(table)
    if fields is None:
        raise InvalidRecord(f"unknown usage table {table!r}")
    if isinstance(record, dict) and table == "build_usage":
        record.setdefault("tokens", 0)  # an outbox row written before the meter counted tokens
    if not isinstance(record, dict) or set(record) != set(fields):
        raise InvalidRecord(f"a {table} record needs exactly the fields {list(fields)}")
    key = record["version_id" if table == "build_usage" else "subject"]
    if not isinstance(key, str) or not key:
        raise InvalidRecord(f"a {table} record needs its key")
    rv = record["row_version"]
    if isinstance(rv, bool) or not isinstance(rv, int):
        raise InvalidRecord(f"{table} {key}: row_version must be an integer")
    return record


class PostgresUsage:
    """The two usage tables beside the version replica (same schema and connection handling)."""

    name = "postgres-usage"

    def __init__(self, dsn: str, *, schema: str = "public", prefix: str = "previewd") -> None:
        if not _IDENT.match(prefix):
            raise ConfigError(f"prefix {prefix!r} must match {_IDENT.pattern}")
        # The version replica's connection handling (reconnect, RemoteError) is reused; its own table is untouched.
        self._pg = PostgresReplica(dsn, table=f"{prefix}_build_usage", schema=schema)
        self._pg._schema_ready = True  # its version-table migrations are not ours: ensure_schema below instead
        self._names = {"schema": sql.Identifier(schema), "meters": sql.Identifier(f"{prefix}_build_usage"),
                       "meters_idx": sql.Identifier(f"{prefix}_build_usage_user_month_idx"),
                       "plans": sql.Identifier(f"{prefix}_plan_assignments")}
        self._ready = False

    def __repr__(self) -> str:
        return f"PostgresUsage(schema={self._names['schema'].as_string()})"

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(**self._names)

    def ensure_schema(self) -> None:
        """Create the tables when missing (idempotent)."""
        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('previewd-usage-schema'))")
                for statement in SCHEMA:
                    conn.execute(self._sql(statement))
        self._pg._run("pg ensure_schema", work)
        self._ready = True

    def upsert(self, table: str, records: list[dict[str, Any]]) -> None:
        """Insert or move forward (higher row_version only) the records of one table, in one transaction."""
        if not records:
            return
        if not self._ready:
            self.ensure_schema()
        fields = METER_FIELDS if table == "build_usage" else ASSIGNMENT_FIELDS
        key = "version_id" if table == "build_usage" else "subject"
        query = sql.SQL(
            "INSERT INTO {schema}.{t} AS t ({cols}) VALUES ({vals}) ON CONFLICT ({key}) DO UPDATE SET {upd} "
            "WHERE t.row_version < EXCLUDED.row_version").format(
            t=self._names["meters" if table == "build_usage" else "plans"],
            cols=sql.SQL(", ").join(sql.Identifier(f) for f in fields),
            vals=sql.SQL(", ").join(sql.Placeholder() for _ in fields), key=sql.Identifier(key),
            upd=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(f))
                                   for f in fields if f != key), schema=self._names["schema"])
        rows = [[r[f] for f in fields] for r in records]

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(query, rows)

        self._pg._run("pg usage upsert", work)

    def month_totals(self, month: str) -> list[dict[str, Any]]:
        """Per user, the month's summed meters across every droplet (the fleet's view)."""
        if not self._ready:
            self.ensure_schema()
        query = self._sql(
            "SELECT user_id, count(*) AS builds, sum(cpu_seconds) AS cpu_seconds, sum(stored_bytes) AS stored_bytes, "
            "sum(pages_deployment::int) AS pages_deployments FROM {schema}.{meters} WHERE month = %s "
            "GROUP BY user_id ORDER BY user_id")
        rows = self._pg._run("pg usage totals", lambda conn: conn.execute(query, (month,)).fetchall())
        return [dict(r) for r in rows]

    def plan_of(self, subject: str) -> str | None:
        """The replicated plan of `user:<id>` or `org:<id>`, or None."""
        if not self._ready:
            self.ensure_schema()
        query = self._sql("SELECT plan FROM {schema}.{plans} WHERE subject = %s")
        row = self._pg._run("pg usage plan", lambda conn: conn.execute(query, (subject,)).fetchone())
        return str(row["plan"]) if row else None

    def close(self) -> None:
        self._pg.close()
