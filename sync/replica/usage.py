"""PostgresUsage: plan assignments, per-build usage meters and live alias redeploys in Postgres, so a fleet bills
and enforces quotas from one place.

Every meter row is keyed by its version id and upserted only forward (row_version), so re-sending a batch or two
droplets reporting the same build never counts it twice: a month's usage is a SUM over `build_usage`. A fleet's
admission reserves its meter row here (`reserve`): one transaction under a per-user-and-month advisory lock
counts the month and inserts the row, so droplets admitting the same user at once never overshoot a plan.
Alias redeploys (`<versions table>_alias_redeploys`, migration 0008_fleet_quotas_alias) are written under the
project's lease epoch, and refused when a newer holder has the project.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from sync.errors import ConfigError, InvalidRecord
from sync.replica.postgres import PostgresReplica

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
# The first key of the admission's two-key advisory lock (the second: the user and month): unlike a lock held
# across a build, a transaction-scoped lock goes with its transaction, so a dropped connection frees nothing early.
QUOTA_LOCK_CLASS = 290601
REDEPLOY_FIELDS = ("redeploy_id", "user_id", "project_id", "version_id", "over", "month", "epoch", "holder")

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
    # A fleet's admission (`reserve`) sums a user's month from the index alone, and counts builds in flight
    # from the few unfinished rows.
    "CREATE INDEX IF NOT EXISTS {meters_cover_idx} ON {schema}.{meters} (user_id, month) "
    "INCLUDE (finished, cpu_seconds, pages_deployment)",
    "CREATE INDEX IF NOT EXISTS {meters_open_idx} ON {schema}.{meters} (user_id, project_id) WHERE NOT finished",
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

    def __init__(self, dsn: str, *, schema: str = "public", prefix: str = "previewd",
                 versions_table: str = "project_versions") -> None:
        """`versions_table`: the version replica's table, whose migrations hold the lease and alias tables."""
        if not _IDENT.match(prefix):
            raise ConfigError(f"prefix {prefix!r} must match {_IDENT.pattern}")
        self._dsn, self._schema, self._versions_table = dsn, schema, versions_table
        # The version replica's connection handling (reconnect, RemoteError) is reused; its own table is untouched.
        self._pg = PostgresReplica(dsn, table=f"{prefix}_build_usage", schema=schema)
        self._pg._schema_ready = True  # its version-table migrations are not ours: ensure_schema below instead
        self._meters_table = f"{prefix}_build_usage"
        self._names = {"schema": sql.Identifier(schema), "meters": sql.Identifier(self._meters_table),
                       "meters_idx": sql.Identifier(f"{prefix}_build_usage_user_month_idx"),
                       "meters_cover_idx": sql.Identifier(f"{prefix}_build_usage_month_cover_idx"),
                       "meters_open_idx": sql.Identifier(f"{prefix}_build_usage_open_idx"),
                       "plans": sql.Identifier(f"{prefix}_plan_assignments"),
                       "leases": sql.Identifier(f"{versions_table}_leases"),
                       "redeploys": sql.Identifier(f"{versions_table}_alias_redeploys")}
        self._ready = False

    def __repr__(self) -> str:
        return f"PostgresUsage(schema={self._names['schema'].as_string()})"

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(**self._names)

    def ensure_schema(self) -> None:
        """Create the tables when missing (idempotent), the version replica's migrations first (the lease and
        alias redeploy tables are among them)."""
        versions = PostgresReplica(self._dsn, table=self._versions_table, schema=self._schema)
        try:
            versions.ensure_schema()
        finally:
            versions.close()

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('previewd-usage-schema'))")
                # ALTER TABLE takes the table's ACCESS EXCLUSIVE lock even when the column exists: queued behind
                # an admission that read the meters and is about to insert, it deadlocks with it. Only ask when
                # the column is missing.
                has_tokens = conn.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "AND column_name = 'tokens'", (self._schema, self._meters_table)).fetchone() is not None
                for statement in SCHEMA:
                    if has_tokens and statement.startswith("ALTER TABLE"):
                        continue
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
            "sum(pages_deployment::int) + (SELECT count(*) FROM {schema}.{redeploys} r WHERE r.user_id = m.user_id "
            "AND r.month = m.month AND r.state <> 'failed') AS pages_deployments FROM {schema}.{meters} m "
            "WHERE month = %s GROUP BY user_id, month ORDER BY user_id")
        rows = self._pg._run("pg usage totals", lambda conn: conn.execute(query, (month,)).fetchall())
        return [dict(r) for r in rows]

    # -- a fleet's admission ---------------------------------------------------------------------------------

    def reserve(self, meter: dict[str, Any], decide: Callable[[dict[str, Any]], None], *, pages: bool = True,
                concurrency: bool = True) -> None:
        """Admit one build fleet-wide: lock the user's month, hand its figures to `decide` (which raises to
        refuse), then insert the build's meter row, all in one transaction. The figures: `builds`, `unfinished`,
        `cpu_seconds`, `pages_deployments` (builds' and alias redeploys') this month, and `concurrent_projects`
        (projects with an unfinished meter, any month); `pages` and `concurrency` False leave those two out (0)
        when the plan does not limit them. RemoteError when Postgres cannot be asked."""
        if not self._ready:
            self.ensure_schema()
        user, month = meter["user_id"], meter["month"]
        redeploys = ("(SELECT count(*) FROM {schema}.{redeploys} r WHERE r.user_id = %(u)s AND r.month = %(m)s "
                     "AND r.state <> 'failed')") if pages else "0"
        in_flight = ("(SELECT count(DISTINCT project_id) FROM {schema}.{meters} c WHERE c.user_id = %(u)s "
                     "AND NOT c.finished)") if concurrency else "0"
        figures = self._sql(
            "SELECT count(*) AS builds, count(*) FILTER (WHERE NOT finished) AS unfinished, "
            "coalesce(sum(cpu_seconds), 0) AS cpu_seconds, coalesce(sum(pages_deployment::int), 0) "
            f"+ {redeploys} AS pages_deployments, {in_flight} AS concurrent_projects "
            "FROM {schema}.{meters} WHERE user_id = %(u)s AND month = %(m)s")
        insert = sql.SQL("INSERT INTO {schema}.{t} ({cols}) VALUES ({vals}) ON CONFLICT (version_id) DO NOTHING") \
            .format(schema=self._names["schema"], t=self._names["meters"],
                    cols=sql.SQL(", ").join(sql.Identifier(f) for f in METER_FIELDS),
                    vals=sql.SQL(", ").join(sql.Placeholder() for _ in METER_FIELDS))

        lock = "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(%s, hashtext(%s))"

        def work(conn: psycopg.Connection[Any]) -> None:
            # Two round trips (BEGIN, lock, count; then insert, COMMIT), not five or more: under load each costs
            # ~2 ms. The count is its own statement after the lock's, so its snapshot sees every reservation made
            # before. The commit does not wait for the WAL flush (~10 ms under load): the row is also in the
            # droplet's outbox, which sends it again, so a Postgres crash in that instant only forgets a
            # reservation until the sync loop runs (README "Plans, quotas and usage").
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(lock, (QUOTA_LOCK_CLASS, f"{user}:{month}"))
                    cur = conn.execute(figures, {"u": user, "m": month})
                    try:
                        decide(dict(cur.fetchone() or {}))
                    except Exception:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute(insert, [meter[f] for f in METER_FIELDS])
                    conn.execute("COMMIT")
            except psycopg.Error:
                conn.close()  # never leave the connection inside a transaction: the server rolls it back
                raise

        self._pg._run("pg quota reserve", work)

    def unreserve(self, version_id: str) -> None:
        """Take back a reservation whose version was never created (its local transaction failed after it)."""
        query = self._sql("DELETE FROM {schema}.{meters} WHERE version_id = %s AND row_version = 1 AND NOT finished")
        self._pg._run("pg quota unreserve", lambda conn: conn.execute(query, (version_id,)))

    def meters_of(self, user_id: str, project_id: str) -> list[dict[str, Any]]:
        """A project's meter rows (a droplet taking the project over closes its predecessor's builds in them)."""
        if not self._ready:
            self.ensure_schema()
        query = sql.SQL("SELECT {cols} FROM {schema}.{meters} WHERE user_id = %s AND project_id = %s").format(
            cols=sql.SQL(", ").join(sql.Identifier(f) for f in METER_FIELDS), **self._names)
        return [dict(r) for r in self._pg._run("pg usage meters",
                                                lambda conn: conn.execute(query, (user_id, project_id)).fetchall())]

    # -- live alias redeploys ---------------------------------------------------------------------------------

    def begin_redeploy(self, rec: dict[str, Any]) -> bool:
        """Record that a redeploy of the live alias is about to be made (state `pending`), under the lease epoch
        in `rec`: False (nothing written) when a newer holder has the project, so a stale droplet never makes
        one. The lease row is read FOR SHARE, so a takeover waits for this row and its catch-up reads it."""
        if not self._ready:
            self.ensure_schema()
        lease_q = self._sql("SELECT epoch FROM {schema}.{leases} WHERE user_id = %s AND project_id = %s FOR SHARE")
        insert = self._sql(
            "INSERT INTO {schema}.{redeploys} (redeploy_id, user_id, project_id, version_id, over, month, epoch, "
            "holder, state) VALUES (%(redeploy_id)s, %(user_id)s, %(project_id)s, %(version_id)s, %(over)s, "
            "%(month)s, %(epoch)s, %(holder)s, 'pending') ON CONFLICT (redeploy_id) DO NOTHING")

        def work(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                got = conn.execute(lease_q, (rec["user_id"], rec["project_id"])).fetchone()
                if got is not None and int(got["epoch"]) > int(rec["epoch"]):
                    return False
                conn.execute(insert, {f: rec[f] for f in REDEPLOY_FIELDS})
                return True

        return bool(self._pg._run("pg redeploy begin", work))

    def end_redeploy(self, redeploy_id: str, *, deployment_id: str | None, failed: str | None = None) -> None:
        """The redeploy was made (its deployment id) or failed (why): a fact about the platform, never fenced."""
        query = self._sql("UPDATE {schema}.{redeploys} SET state = %s, deployment_id = %s, error = %s, "
                          "done_at = clock_timestamp() WHERE redeploy_id = %s")
        args = ("failed" if failed else "made", deployment_id, failed, redeploy_id)
        self._pg._run("pg redeploy end", lambda conn: conn.execute(query, args))

    def redeploys_of(self, user_id: str, project_id: str) -> list[dict[str, Any]]:
        """A project's redeploys, oldest first (a droplet taking it over learns what the branch holds)."""
        if not self._ready:
            self.ensure_schema()
        query = self._sql("SELECT redeploy_id, user_id, project_id, version_id, over, month, epoch, holder, state, "
                          "deployment_id, created_at, deleted_at FROM {schema}.{redeploys} "
                          "WHERE user_id = %s AND project_id = %s ORDER BY created_at, redeploy_id")
        return [dict(r) for r in self._pg._run("pg redeploys",
                                                lambda conn: conn.execute(query, (user_id, project_id)).fetchall())]

    def redeploy_deleted(self, deployment_ids: list[str]) -> None:
        """The cleanup deleted these redeploy deployments (the rows stay: they were billed)."""
        if deployment_ids:
            query = self._sql("UPDATE {schema}.{redeploys} SET deleted_at = clock_timestamp() "
                              "WHERE deployment_id = ANY(%s) AND deleted_at IS NULL")
            self._pg._run("pg redeploy deleted", lambda conn: conn.execute(query, (list(deployment_ids),)))

    def plan_of(self, subject: str) -> str | None:
        """The replicated plan of `user:<id>` or `org:<id>`, or None."""
        if not self._ready:
            self.ensure_schema()
        query = self._sql("SELECT plan FROM {schema}.{plans} WHERE subject = %s")
        row = self._pg._run("pg usage plan", lambda conn: conn.execute(query, (subject,)).fetchone())
        return str(row["plan"]) if row else None

    def close(self) -> None:
        self._pg.close()
