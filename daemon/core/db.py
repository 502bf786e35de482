"""Local state on SQLite (peewee): the version rows, rate-cap events, plans and usage, and the connection factory."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DateTimeField,
    FloatField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
)

# Every connection gets the same pragmas: WAL so API reads never wait on the build worker's writes,
# a busy timeout so concurrent writers queue instead of failing, and foreign keys on.
PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 10000,
    "foreign_keys": 1,
    "cache_size": -16000,
}

database = SqliteDatabase(None, pragmas=PRAGMAS, check_same_thread=False)

STATUSES = ("queued", "building", "deploying", "deployed", "failed")
ACTIVE_STATUSES = ("queued", "building", "deploying")
FAILURE_REASONS = (
    "generation_failed", "invalid_output", "install_failed", "audit_failed", "build_failed", "no_output",
    "cpu_limit", "memory_limit", "output_limit", "timeout", "pids_limit", "disk_limit", "deploy_failed",
    "interrupted", "sandbox_unavailable", "check_failed", "history_limit",
)


# The dashboard's reads (bench/ui.py): the window analytics scan created_at, the project list groups by project
# and counts failures without touching the table. Additive: created when missing, at every start.
UI_INDEXES = {
    "project_versions_created_stats": "project_versions (created_at, status, failure_reason, build_duration_ms, "
                                      "install_duration_ms, deploy_duration_ms)",
    "project_versions_project_status": "project_versions (user_id, project_id, status, version_id)",
    "project_versions_status": "project_versions (status)",
}


def utcnow() -> datetime:
    """Now in UTC, naive: SQLite stores it as text that peewee parses back without an offset."""
    return datetime.now(UTC).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database


class ProjectVersion(BaseModel):
    """One version of one project: the seed's ProjectVersions columns plus what the daemon needs."""

    version_id = CharField(primary_key=True, max_length=26)
    user_id = CharField(max_length=64)
    project_id = CharField(max_length=64)
    prompt = TextField()
    parent_version_id = CharField(null=True, max_length=26)
    preview_url = TextField(null=True)
    artifact_url = TextField(null=True)
    framework = CharField(null=True, max_length=32)
    build_duration_ms = IntegerField(null=True)
    output_size_bytes = BigIntegerField(null=True)
    claude_json = TextField(null=True)
    status = CharField(max_length=16, default="queued")
    needs_rebuild = BooleanField(default=False)
    base_snapshot_id = CharField(null=True, max_length=64)
    cf_deployment_id = CharField(null=True, max_length=64)
    node_version = CharField(null=True, max_length=32)
    pnpm_version = CharField(null=True, max_length=32)
    created_at = DateTimeField(default=utcnow)
    # Beyond the seed:
    failure_reason = CharField(null=True, max_length=32)
    failure_message = TextField(null=True)
    pinned = BooleanField(default=False)
    rollback_of = CharField(null=True, max_length=26)
    archived_at = DateTimeField(null=True)
    updated_at = DateTimeField(default=utcnow)
    kind = CharField(max_length=16, default="new")  # new | rebuild | rollback | repair
    row_version = BigIntegerField(default=1)
    install_duration_ms = IntegerField(null=True)
    deploy_duration_ms = IntegerField(null=True)
    install_skipped = BooleanField(default=False)
    audit_status = CharField(null=True, max_length=16)  # passed | critical | unavailable | skipped
    deployed_at = DateTimeField(null=True)
    render_status = CharField(null=True, max_length=16)  # ok | blank | errors | unavailable
    render_detail = TextField(null=True)  # JSON: httpStatus, jsErrors, failedRequests, blockedRequests, blank, detail
    target_package = CharField(null=True, max_length=240)  # a workspace's built package (its path), or requested
    checks = TextField(null=True)  # JSON: {typecheck, lint}, each status/errors/warnings/durationMs/diagnostics
    timings = TextField(null=True)  # JSON: milliseconds per step (generate, install, checks, bundle, deploy, render)
    # The retention cleanup's tombstone: the preview is deleted for good, on every droplet (daemon/ops/retention.py).
    preview_deleted_at = DateTimeField(null=True)
    # The repair loop (daemon/intake/repair.py): an attempt's root failure and its number (its parent is the
    # version it repairs); `repair` is the loop's state on the root failure (or a request's opt-out), and
    # `repair_request` the diagnostics a failed version hands the generator (what an attempt of it sends).
    repair_of = CharField(null=True, max_length=26)
    repair_attempt = IntegerField(null=True)
    repair = TextField(null=True)  # JSON: optOut | mode, status running|done, attempts, outcome, stopReason, ...
    repair_request = TextField(null=True)  # JSON: reason, message, errors (with source lines), logTail, instruction

    class Meta:
        table_name = "project_versions"
        indexes = (
            (("user_id", "project_id"), False),
            (("project_id", "version_id"), False),
        )

    def claude(self) -> Any:
        return json.loads(self.claude_json) if self.claude_json else None


class RateEvent(BaseModel):
    """One counted request against a rate cap; persisted so a restart does not reset the caps."""

    bucket = CharField(max_length=160, index=True)
    at = DateTimeField(default=utcnow, index=True)


class Project(BaseModel):
    """Per project: which version is live now, and the undo/redo stacks of live versions the user walked."""

    user_id = CharField(max_length=64)
    project_id = CharField(max_length=64)
    live_version_id = CharField(null=True, max_length=26)
    undo_stack = TextField(default="[]")
    redo_stack = TextField(default="[]")
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "projects"
        indexes = ((("user_id", "project_id"), True),)

    def stack(self, name: str) -> list[str]:
        value = json.loads(getattr(self, f"{name}_stack") or "[]")
        return [str(x) for x in value] if isinstance(value, list) else []


class PendingDeployment(BaseModel):
    """A deployment uploaded but not yet confirmed by the platform; polled after a grace period, survives restarts."""

    version_id = CharField(primary_key=True, max_length=26)
    deployment_id = CharField(max_length=64, index=True)
    uploaded_at = DateTimeField(default=utcnow)
    next_poll_at = DateTimeField(default=utcnow, index=True)
    polls = IntegerField(default=0)
    last_error = TextField(null=True)

    class Meta:
        table_name = "pending_deployments"


class PlanAssignment(BaseModel):
    """Which plan a user or an org is on (`subject` = "user:<id>" or "org:<id>"); replicated like versions."""

    subject = CharField(primary_key=True, max_length=72)
    plan = CharField(max_length=32)
    updated_at = DateTimeField(default=utcnow)
    row_version = BigIntegerField(default=1)

    class Meta:
        table_name = "plan_assignments"


class BuildUsage(BaseModel):
    """The meter: one row per admitted version, written in the version's own transactions (admission, each
    sandboxed step, its final state), so a restart neither loses nor double-counts a build."""

    version_id = CharField(primary_key=True, max_length=26)
    user_id = CharField(max_length=64)
    org_id = CharField(null=True, max_length=64)
    project_id = CharField(max_length=64)
    month = CharField(max_length=7)  # YYYY-MM (UTC) of admission: every meter of a build counts in that month
    plan = CharField(null=True, max_length=32)
    kind = CharField(max_length=16)
    cpu_seconds = FloatField(default=0.0)
    stored_bytes = BigIntegerField(default=0)
    pages_deployment = BooleanField(default=False)
    finished = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    row_version = BigIntegerField(default=1)
    # The generator's tokens (input + output) when its backend reports them; a SQL default, as raw inserts omit it.
    tokens = BigIntegerField(default=0, constraints=[SQL("DEFAULT 0")])

    class Meta:
        table_name = "build_usage"
        # Covering: a user's month is summed from the index alone, inside the admission transaction.
        indexes = ((("user_id", "month", "finished", "cpu_seconds", "stored_bytes", "pages_deployment"), False),
                   (("month",), False))


class StorageGauge(BaseModel):
    """Bytes a user has in the object store now (artifacts, packs, screenshots); refreshed on store and delete."""

    user_id = CharField(primary_key=True, max_length=64)
    bytes = BigIntegerField(default=0)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "storage_gauges"


class QuotaAlertSent(BaseModel):
    """A quota alert already posted ("<month>:<userId>:<quota>"): once per user, quota and month."""

    key = CharField(primary_key=True, max_length=128)
    at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "quota_alerts_sent"


class AliasRedeploy(BaseModel):
    """An older version redeployed to its project's Pages live branch (undo/redo): the alias follows the pointer.
    `over` is the newest uploaded version when it was made (what it superseded); rows count as Pages deployments
    unless `failed`. A fleet records each one in Postgres first (`pending`, under the lease epoch) and copies the
    project's rows from there on a takeover, so no droplet redeploys what another already did."""

    id = AutoField()
    user_id = CharField(max_length=64)
    project_id = CharField(max_length=64)
    version_id = CharField(max_length=26)
    over = CharField(null=True, max_length=26)
    deployment_id = CharField(max_length=64)  # "" until made
    month = CharField(max_length=7)  # YYYY-MM (UTC)
    created_at = DateTimeField(default=utcnow)
    redeploy_id = CharField(null=True, max_length=26, index=True)  # its key in Postgres (a fleet's)
    state = CharField(max_length=16, default="made")  # pending (asked, outcome unknown) | made | failed
    deleted_at = DateTimeField(null=True)  # the cleanup deleted its deployment (the row stays: it was billed)

    class Meta:
        table_name = "alias_redeploys"
        indexes = ((("user_id", "project_id"), False), (("month", "user_id"), False))


class AliasRetry(BaseModel):
    """A project whose live alias could not be moved: retried with backoff by the scheduler, survives restarts."""

    user_id = CharField(max_length=64)
    project_id = CharField(max_length=64)
    attempts = IntegerField(default=0)
    next_at = DateTimeField(default=utcnow, index=True)
    last_error = TextField(null=True)

    class Meta:
        table_name = "alias_retries"
        primary_key = CompositeKey("user_id", "project_id")


class UiSession(BaseModel):
    """A live dashboard session (daemon/ui/access.py): the cookie names it, sign-out deletes it."""

    sid = CharField(primary_key=True, max_length=64)
    exp = FloatField()  # unix seconds

    class Meta:
        table_name = "ui_sessions"


ALL_MODELS: list[type[BaseModel]] = [ProjectVersion, RateEvent, Project, PendingDeployment, PlanAssignment,
                                     BuildUsage, StorageGauge, QuotaAlertSent, AliasRedeploy, AliasRetry,
                                     UiSession]


BUSY_TIMEOUT_S = 10.0


def raw_connect(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection to state.db with the same pragmas (sync's outbox runs its own transactions)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    for name, value in PRAGMAS.items():
        conn.execute(f"PRAGMA {name}={value}")
    return conn


def connect(data_dir: Path) -> SqliteDatabase:
    """Open state.db in the data dir (creating tables and indexes idempotently)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if not database.is_closed():
        database.close()
    database.init(str(data_dir / "state.db"), pragmas=PRAGMAS, check_same_thread=False)
    with database.connection_context():
        had_meter = database.table_exists("build_usage")
        database.create_tables(ALL_MODELS, safe=True)
        _add_missing_columns()
        if not had_meter:
            _backfill_meter()
        # The seed's third index: newest-first history per project.
        database.execute_sql(
            "CREATE INDEX IF NOT EXISTS project_versions_user_project_created "
            "ON project_versions (user_id, project_id, created_at DESC)"
        )
        # A user's builds in flight (the concurrent-projects quota, inside the admission transaction).
        database.execute_sql("CREATE INDEX IF NOT EXISTS project_versions_user_status "
                             "ON project_versions (user_id, status)")
        for name, columns in UI_INDEXES.items():
            database.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")
    return database


def _backfill_meter() -> None:
    """First start with the usage meter: one row per version already there, so this month's builds count toward
    the quotas (their CPU was never measured: 0)."""
    database.execute_sql(
        "INSERT OR IGNORE INTO build_usage (version_id, user_id, org_id, project_id, month, plan, kind, cpu_seconds, "
        "stored_bytes, pages_deployment, finished, created_at, row_version) SELECT version_id, user_id, NULL, "
        "project_id, substr(created_at, 1, 7), NULL, coalesce(kind, 'new'), 0, 0, cf_deployment_id IS NOT NULL, "
        "status IN ('deployed', 'failed') OR (status = 'deploying' AND cf_deployment_id IS NOT NULL), created_at, 1 "
        "FROM project_versions")


def _add_missing_columns() -> None:
    """Additive migration: columns a newer daemon declares are added to an older state.db (all nullable or
    defaulted), so an upgrade never needs a manual step."""
    from playhouse.migrate import SqliteMigrator, migrate

    migrator = SqliteMigrator(database)
    for model in ALL_MODELS:
        table = model._meta.table_name
        have = {c.name for c in database.get_columns(table)}
        missing = [f for f in model._meta.sorted_fields if f.column_name not in have]
        if missing:
            migrate(*[migrator.add_column(table, f.column_name, f) for f in missing])
