"""Plans, quotas and the usage meter: which plan applies, what a user used this month (UTC), and the admission check.

The meter is one `build_usage` row per admitted version, inserted in the transaction that creates the version,
added to after each sandboxed step, and closed in the transaction of the version's final state; monthly usage is
a SUM over those rows, so it is exact across restarts. Storage is a gauge per user (`storage_gauges`). Each row is
replicated (outbox destination "usage") keyed by version id, so a fleet can later sum the same rows in Postgres
without counting a build twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

from daemon.core.config import Config, PlanConfig
from daemon.core.db import ACTIVE_STATUSES, BuildUsage, PlanAssignment, ProjectVersion, StorageGauge, database, utcnow
from daemon.core.errors import BadRequest, QuotaExceeded
from sync.names import STORE_ARCHIVE_DIR, check_id, valid_id

# The clock of every month computation; tests replace it to cross a UTC midnight.
clock: Callable[[], datetime] = utcnow

# Each quota's name is its PlanConfig key and the Usage figure it limits.
QUOTAS = ("builds", "build_cpu_seconds", "storage_bytes", "pages_deployments", "concurrent_projects")
CLOSING = ("deployed", "failed")  # plus `deploying` once the upload is done (a deployment id is recorded)
CONCURRENCY_RETRY_S = 30


class OutboxWriter(Protocol):
    """sync's outbox as the daemon writes to it (the same seam as `versions.OutboxWriter`, which imports us)."""

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> None: ...


# -- months ----------------------------------------------------------------------------------------------------

def month_of(t: datetime) -> str:
    """`YYYY-MM` of a UTC time."""
    return f"{t.year:04d}-{t.month:02d}"


def current_month() -> str:
    return month_of(clock())


def check_month(month: Any) -> str:
    """A `YYYY-MM` query value, or 400 naming `month`."""
    if not isinstance(month, str) or len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit() \
            or not 1 <= int(month[5:]) <= 12:
        raise BadRequest("month must be YYYY-MM", code="invalid_field", field="month")
    return month


def month_reset(month: str) -> datetime:
    """The UTC midnight that starts the month after `month` (when its quotas reset)."""
    y, m = int(month[:4]), int(month[5:])
    return datetime(y + (m == 12), 1 if m == 12 else m + 1, 1)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds") + "Z"


# -- plans -----------------------------------------------------------------------------------------------------

def enabled(cfg: Config) -> bool:
    """Quotas are on when at least one plan is configured."""
    return bool(cfg.plans)


def subject(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


def plan_for(cfg: Config, user_id: str, org_id: str | None = None) -> tuple[str | None, PlanConfig | None]:
    """The plan that applies to a request: the org's when it has one, else the user's, else the default."""
    if not cfg.plans:
        return None, None
    keys = ([subject("org", org_id)] if org_id else []) + [subject("user", user_id)]
    # Raw SQL on the admission path: it runs inside the IMMEDIATE transaction, where every 0.1 ms is held.
    rows = dict(database.execute_sql(f"SELECT subject, plan FROM plan_assignments WHERE subject IN "
                                     f"({', '.join('?' * len(keys))})", keys).fetchall())
    for key in keys:
        name = rows.get(key)
        if name in cfg.plans:  # an assignment to a plan since removed from the config falls through
            return name, cfg.plans[name]
    name = cfg.quotas.default_plan or None
    return name, (cfg.plans[name] if name else None)


def assignment_record(row: PlanAssignment) -> dict[str, Any]:
    """The replica record of an assignment."""
    kind, _, ident = str(row.subject).partition(":")
    return {"subject": row.subject, "kind": kind, "id": ident, "plan": row.plan,
            "updated_at": iso(row.updated_at), "row_version": int(row.row_version)}


def assign(cfg: Config, outbox: OutboxWriter | None, kind: str, ident: str, plan: Any) -> dict[str, Any]:
    """Put a user or org on a plan (400 for an unknown plan); replicated with the row in one transaction."""
    if not isinstance(plan, str) or plan not in cfg.plans:
        raise BadRequest(f"plan must be one of: {', '.join(cfg.plans) or '(no plans configured)'}",
                         code="invalid_field", field="plan")
    key = subject(kind, ident)
    with database.atomic("IMMEDIATE"):
        row = PlanAssignment.get_or_none(PlanAssignment.subject == key)
        if row is None:
            row = PlanAssignment.create(subject=key, plan=plan, updated_at=utcnow(), row_version=1)
        else:
            row.plan, row.updated_at, row.row_version = plan, utcnow(), int(row.row_version) + 1
            row.save()
        rec = assignment_record(row)
        if outbox is not None:
            outbox.add(database.connection(), "usage", f"plan:{key}", {"table": "plan_assignments", "record": rec})
    return rec


def rate_cap(cfg: Config, plan: PlanConfig | None, name: str) -> int:
    """A rate cap: the plan's override when it sets one, else [rate_limits]."""
    override = int(getattr(plan, name)) if plan is not None else 0
    return override or int(getattr(cfg.rate_limits, name))


# -- usage -----------------------------------------------------------------------------------------------------

@dataclass
class Usage:
    """One user's figures for one month (storage and concurrency are now, not per month)."""

    builds: int = 0
    unfinished: int = 0
    build_cpu_seconds: float = 0.0
    artifact_bytes: int = 0
    pages_deployments: int = 0
    storage_bytes: int = 0
    concurrent_projects: int = 0

    def figure(self, quota: str) -> float:
        return float(getattr(self, quota))


def usage_of(user_id: str, month: str, *, live: bool = True, storage: bool = True,
             concurrency: bool = True) -> Usage:
    """Summed meters of a user's builds admitted in `month`; `live` adds the storage gauge and the projects in
    flight (each only when asked for: admission skips what the plan does not limit)."""
    cols, args = "", cast("tuple[Any, ...]", ())
    if live and storage:
        cols += ", (SELECT bytes FROM storage_gauges WHERE user_id = ?)"
        args += (user_id,)
    if live and concurrency:
        cols += (", (SELECT count(DISTINCT project_id) FROM project_versions WHERE user_id = ? AND status IN "
                 f"({', '.join('?' * len(ACTIVE_STATUSES))}))")
        args += (user_id, *ACTIVE_STATUSES)
    # One statement: the month's meters (a covering index), the live alias redeploys (Pages deployments too:
    # daemon/publish/livealias.py), the storage gauge, the projects in flight.
    row = database.execute_sql(
        "SELECT count(*), coalesce(sum(finished = 0), 0), coalesce(sum(cpu_seconds), 0), "
        "coalesce(sum(stored_bytes), 0), coalesce(sum(pages_deployment), 0), "
        f"(SELECT count(*) FROM alias_redeploys WHERE user_id = ? AND month = ? AND state <> 'failed'){cols} "
        "FROM build_usage "
        "WHERE user_id = ? AND month = ?", (user_id, month, *args, user_id, month)).fetchone()
    u = Usage(int(row[0]), int(row[1]), float(row[2]), int(row[3]), int(row[4]) + int(row[5] or 0))
    extra = list(row[6:])
    if live and storage:
        u.storage_bytes = int(extra.pop(0) or 0)
    if live and concurrency:
        u.concurrent_projects = int(extra.pop(0) or 0)
    return u


def repair_usage(user_id: str, month: str) -> tuple[int, int]:
    """A user's repair attempts (meters of kind `repair`) and the generator tokens they used, in `month`."""
    row = database.execute_sql("SELECT count(*), coalesce(sum(tokens), 0) FROM build_usage WHERE user_id = ? AND "
                               "month = ? AND kind = 'repair'", (user_id, month)).fetchone()
    return int(row[0]), int(row[1])


def shown(quota: str, value: float | None) -> float | int | None:
    """A figure as answers show it: CPU seconds with a fraction (3 places), every other one a whole count."""
    if value is None:
        return None
    return round(value, 3) if quota == "build_cpu_seconds" else int(value)


def limits_of(plan: PlanConfig | None) -> dict[str, float]:
    """The plan's non-zero limits by quota name."""
    if plan is None:
        return {}
    return {q: float(getattr(plan, q)) for q in QUOTAS if getattr(plan, q)}


def check(cfg: Config, plan_name: str | None, plan: PlanConfig | None, user_id: str, project_id: str, *,
          counts_pages: bool = False) -> None:
    """Refuse (429 quota_exceeded) a build that would pass a limit of the plan. Run it inside the admission's
    IMMEDIATE transaction: admitted-but-unfinished builds are meter rows already, so a burst cannot overshoot.
    ``counts_pages``: the deployer's ``counts_pages_quota`` (each deploy creates a Pages deployment)."""
    limits = limits_of(plan)
    if not limits:
        return
    u = usage_of(user_id, current_month(), storage="storage_bytes" in limits,
                 concurrency="concurrent_projects" in limits)
    judge(plan_name, plan, u, counts_pages=counts_pages)


def judge(plan_name: str | None, plan: PlanConfig | None, u: Usage, *, counts_pages: bool = False) -> None:
    """Refuse (429 quota_exceeded) one more build given the user's figures `u` (this droplet's meter, or the
    fleet's in Postgres: daemon/fleet/ledger.py)."""
    limits = limits_of(plan)
    if not limits:
        return
    month = current_month()
    resets = iso(month_reset(month))
    retry = max(1, int((month_reset(month) - clock()).total_seconds()))

    def refuse(quota: str, used: float, limit: float, what: str, resets_at: str | None = resets,
               retry_after: int = retry) -> None:
        shown_used, shown_limit = shown(quota, used), shown(quota, limit)
        raise QuotaExceeded(f"quota exceeded: {what} ({shown_used} of {shown_limit} on plan {plan_name})",
                            quota=quota, used=shown_used, limit=shown_limit, plan=plan_name, month=month,
                            resetsAt=resets_at, retry_after=retry_after)

    if "builds" in limits and u.builds + 1 > limits["builds"]:
        refuse("builds", u.builds, limits["builds"], "builds this month")
    if "build_cpu_seconds" in limits and u.build_cpu_seconds >= limits["build_cpu_seconds"]:
        refuse("build_cpu_seconds", u.build_cpu_seconds, limits["build_cpu_seconds"], "build CPU seconds this month")
    if "storage_bytes" in limits and u.storage_bytes >= limits["storage_bytes"]:
        # a gauge: it goes down when versions are deleted, not at the month's end
        refuse("storage_bytes", u.storage_bytes, limits["storage_bytes"], "bytes stored", None, 3600)
    # Only a deployer that creates Pages deployments counts them; a build still running may yet create one.
    if "pages_deployments" in limits and counts_pages \
            and u.pages_deployments + u.unfinished + 1 > limits["pages_deployments"]:
        refuse("pages_deployments", u.pages_deployments + u.unfinished, limits["pages_deployments"],
               "Pages deployments this month")
    if "concurrent_projects" in limits and u.concurrent_projects + 1 > limits["concurrent_projects"]:
        refuse("concurrent_projects", u.concurrent_projects, limits["concurrent_projects"],
               "projects building at once", None, CONCURRENCY_RETRY_S)


# -- the meter -------------------------------------------------------------------------------------------------

def meter_record(row: BuildUsage) -> dict[str, Any]:
    """The replica record of one build's meter."""
    return {"version_id": row.version_id, "user_id": row.user_id, "org_id": row.org_id,
            "project_id": row.project_id, "month": row.month, "plan": row.plan, "kind": row.kind,
            "cpu_seconds": float(row.cpu_seconds), "stored_bytes": int(row.stored_bytes),
            "pages_deployment": bool(row.pages_deployment), "finished": bool(row.finished),
            "created_at": iso(row.created_at), "row_version": int(row.row_version), "tokens": int(row.tokens or 0)}


def _replicate(outbox: OutboxWriter | None, row: BuildUsage) -> None:
    if outbox is not None:
        outbox.add(database.connection(), "usage", f"build:{row.version_id}",
                   {"table": "build_usage", "record": meter_record(row)})


def opening_record(version_id: str, user_id: str, project_id: str, kind: str, org_id: str | None,
                   plan: str | None) -> dict[str, Any]:
    """The replica record of a meter as admission opens it (a fleet reserves this very record in Postgres first,
    so the outbox's later copy of it changes nothing there)."""
    return {"version_id": version_id, "user_id": user_id, "org_id": org_id, "project_id": project_id,
            "month": month_of(clock()), "plan": plan, "kind": kind, "cpu_seconds": 0.0, "stored_bytes": 0,
            "pages_deployment": False, "finished": False, "created_at": iso(utcnow()), "row_version": 1,
            "tokens": 0}


def open_meter(outbox: OutboxWriter | None, v: ProjectVersion, org_id: str | None, plan: str | None,
               rec: dict[str, Any] | None = None) -> None:
    """A version was admitted: its meter row (in the caller's transaction, the one that created the version);
    `rec`: the record admission already reserved, when it did."""
    if rec is None:
        rec = opening_record(v.version_id, v.user_id, v.project_id, v.kind, org_id, plan)
    database.execute_sql(
        "INSERT INTO build_usage (version_id, user_id, org_id, project_id, month, plan, kind, cpu_seconds, "
        "stored_bytes, pages_deployment, finished, created_at, row_version) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, "
        "?, 1)", (v.version_id, v.user_id, org_id, v.project_id, rec["month"], plan, v.kind,
                  rec["created_at"][:-1].replace("T", " ")))
    if outbox is not None:
        outbox.add(database.connection(), "usage", f"build:{v.version_id}", {"table": "build_usage", "record": rec})


def add_cpu(version_id: str, seconds: float) -> None:
    """One sandboxed step of a build ended: add the CPU seconds it measured (its own small transaction, so a
    SIGKILL later loses at most the step that was running)."""
    if seconds > 0:
        BuildUsage.update(cpu_seconds=BuildUsage.cpu_seconds + float(seconds)) \
            .where((BuildUsage.version_id == version_id) & (BuildUsage.finished == False)).execute()  # noqa: E712


def add_tokens(version_id: str, tokens: int) -> None:
    """The generator reported the tokens it used for this build (the repair budget counts them)."""
    if tokens > 0:
        BuildUsage.update(tokens=BuildUsage.tokens + int(tokens)) \
            .where((BuildUsage.version_id == version_id) & (BuildUsage.finished == False)).execute()  # noqa: E712


def note_stored(version_id: str, nbytes: int) -> None:
    """The build stored its artifact (bytes)."""
    BuildUsage.update(stored_bytes=int(nbytes)) \
        .where((BuildUsage.version_id == version_id) & (BuildUsage.finished == False)).execute()  # noqa: E712


def closes(v: ProjectVersion) -> bool:
    """True when a row change ends the build's spending: deployed, failed, or uploaded (deployment id known)."""
    return v.status in CLOSING or (v.status == "deploying" and bool(v.cf_deployment_id))


def close_meter(outbox: OutboxWriter | None, v: ProjectVersion) -> None:
    """Close the version's meter exactly once, in the caller's transaction (the version's final state)."""
    n = BuildUsage.update(finished=True, pages_deployment=bool(v.cf_deployment_id),
                          row_version=BuildUsage.row_version + 1) \
        .where((BuildUsage.version_id == v.version_id) & (BuildUsage.finished == False)).execute()  # noqa: E712
    if n:
        row = BuildUsage.get_or_none(BuildUsage.version_id == v.version_id)
        if row is not None:
            _replicate(outbox, row)


# -- storage gauge ---------------------------------------------------------------------------------------------

def storage_bytes(user_id: str) -> int:
    row = StorageGauge.get_or_none(StorageGauge.user_id == user_id)
    return int(row.bytes) if row is not None else 0


def _tree_bytes(root: Path) -> int:
    total = 0
    if not root.is_dir() or root.is_symlink():
        return 0
    for p in root.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if not p.is_symlink() and p.is_file():
            total += st.st_size
    return total


def add_storage(user_id: str, delta: int) -> None:
    """An object of the user was stored (or replaced): move the gauge by the change in bytes, without walking
    the user's folder on every store (the nightly cleanup recounts it exactly)."""
    if delta:
        database.execute_sql(
            "INSERT INTO storage_gauges (user_id, bytes, updated_at) VALUES (?, max(0, ?), ?) ON CONFLICT (user_id) "
            "DO UPDATE SET bytes = max(0, bytes + excluded.bytes), updated_at = excluded.updated_at",
            (user_id, int(delta), str(utcnow())))


def refresh_storage(objects_root: Path, user_id: str) -> int:
    """Measure what the user holds in the local object store (its folder, archived objects too: artifacts,
    packs, screenshots, pinned versions' included) into the gauge; returns the bytes."""
    check_id(user_id, "userId")  # never a store's own folder (`_archive`, `_tmp`) counted as a user's
    n = _tree_bytes(objects_root / user_id) + _tree_bytes(objects_root / STORE_ARCHIVE_DIR / user_id)
    StorageGauge.insert(user_id=user_id, bytes=n, updated_at=utcnow()) \
        .on_conflict(conflict_target=[StorageGauge.user_id], update={StorageGauge.bytes: n,
                                                                     StorageGauge.updated_at: utcnow()}).execute()
    return n


def refresh_all_storage(objects_root: Path) -> dict[str, int]:
    """The nightly refresh: every user folder in the store, and a zero for users whose folder is gone."""
    seen: dict[str, int] = {}
    if objects_root.is_dir():
        for d in sorted(objects_root.iterdir()):
            if d.is_dir() and not d.is_symlink() and valid_id(d.name):  # the store's own folders are no user
                seen[d.name] = refresh_storage(objects_root, d.name)
    for row in StorageGauge.select().where(StorageGauge.user_id.not_in(list(seen) or [""])):
        if valid_id(row.user_id):
            seen[row.user_id] = refresh_storage(objects_root, row.user_id)
    return seen
