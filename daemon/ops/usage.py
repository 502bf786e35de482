"""Usage views: one user's month against its plan, the billing export (CSV, JSON lines), and usage by plan."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from daemon.core import quotas
from daemon.core.db import StorageGauge, database
from daemon.core.ids import check_org_id, check_project_ids

if TYPE_CHECKING:
    from daemon.core.config import Config

# The export's columns, in order: one row per user per month with every meter.
EXPORT_FIELDS = ("month", "user_id", "org_id", "plan", "builds", "builds_unfinished", "build_cpu_seconds",
                 "artifact_bytes", "pages_deployments", "storage_bytes", "generator_tokens", "repair_attempts",
                 "repair_tokens")
_JSON = {"builds": "builds", "unfinished": "buildsUnfinished", "build_cpu_seconds": "buildCpuSeconds",
         "artifact_bytes": "artifactBytes", "pages_deployments": "pagesDeployments", "storage_bytes": "storageBytes",
         "concurrent_projects": "concurrentProjects"}
_QUOTA_JSON = {"builds": "builds", "build_cpu_seconds": "buildCpuSeconds", "storage_bytes": "storageBytes",
               "pages_deployments": "pagesDeployments", "concurrent_projects": "concurrentProjects"}


def report(cfg: Config, user_id: Any, month: Any = None, org_id: Any = None) -> dict[str, Any]:
    """A user's usage in a month (default: this one, UTC) against the limits of the plan that applies now."""
    check_project_ids(user_id, "x")
    month = quotas.check_month(month) if month else quotas.current_month()
    if org_id is not None:
        check_org_id(org_id)
    name, plan = quotas.plan_for(cfg, user_id, org_id)
    u = quotas.usage_of(user_id, month)
    limits = quotas.limits_of(plan)
    resets = quotas.iso(quotas.month_reset(month))
    rows = []
    for q in quotas.QUOTAS:
        limit = limits.get(q)
        used = u.figure(q)
        rows.append({"quota": q, "used": quotas.shown(q, used), "limit": quotas.shown(q, limit),
                     "ratio": round(used / limit, 4) if limit else None,
                     "resetsAt": None if q in ("storage_bytes", "concurrent_projects") else resets})
    attempts, tokens = quotas.repair_usage(user_id, month)
    return {"userId": user_id, "orgId": org_id, "month": month, "plan": name, "quotasEnabled": quotas.enabled(cfg),
            "usage": {key: round(getattr(u, attr), 3) if attr == "build_cpu_seconds" else getattr(u, attr)
                      for attr, key in _JSON.items()},
            # The repair loop's budget (README "Repair"): attempts and their generator tokens, with the plan's limits.
            "repair": {"attempts": attempts, "tokens": tokens,
                       "attemptsLimit": (plan.repair_attempts or None) if plan is not None else None,
                       "tokensLimit": (plan.repair_tokens or None) if plan is not None else None},
            "limits": {_QUOTA_JSON[q]: quotas.shown(q, limits.get(q)) for q in quotas.QUOTAS},
            "quotas": rows, "resetsAt": resets}


def export_rows(cfg: Config, month: Any = None) -> list[dict[str, Any]]:
    """One row per user with usage in the month: every meter summed; storage is the gauge now (current month)."""
    month = quotas.check_month(month) if month else quotas.current_month()
    cur = database.execute_sql(
        "SELECT user_id, count(*), coalesce(sum(finished = 0), 0), coalesce(sum(cpu_seconds), 0), "
        "coalesce(sum(stored_bytes), 0), coalesce(sum(pages_deployment), 0), max(org_id), coalesce(sum(tokens), 0), "
        "coalesce(sum(kind = 'repair'), 0), coalesce(sum(CASE WHEN kind = 'repair' THEN tokens ELSE 0 END), 0), "
        "(SELECT plan FROM build_usage b2 WHERE b2.user_id = b.user_id AND b2.month = b.month "
        " ORDER BY created_at DESC, version_id DESC LIMIT 1) "
        "FROM build_usage b WHERE month = ? GROUP BY user_id ORDER BY user_id", (month,))
    rows: dict[str, dict[str, Any]] = {}
    for user_id, builds, unfinished, cpu, stored, pages, org, tokens, repairs, repair_tokens, plan in cur.fetchall():
        rows[user_id] = {"month": month, "user_id": user_id, "org_id": org, "plan": plan, "builds": int(builds),
                         "builds_unfinished": int(unfinished), "build_cpu_seconds": round(float(cpu), 3),
                         "artifact_bytes": int(stored), "pages_deployments": int(pages), "storage_bytes": 0,
                         "generator_tokens": int(tokens), "repair_attempts": int(repairs),
                         "repair_tokens": int(repair_tokens)}
    # Live alias redeploys are Pages deployments too (daemon/publish/livealias.py): billed like a build's.
    for user_id, n in database.execute_sql(
            "SELECT user_id, count(*) FROM alias_redeploys WHERE month = ? AND state <> 'failed' GROUP BY user_id",
            (month,)).fetchall():
        row = rows.setdefault(user_id, {"month": month, "user_id": user_id, "org_id": None,
                                        "plan": quotas.plan_for(cfg, user_id)[0], "builds": 0, "builds_unfinished": 0,
                                        "build_cpu_seconds": 0.0, "artifact_bytes": 0, "pages_deployments": 0,
                                        "storage_bytes": 0, "generator_tokens": 0, "repair_attempts": 0,
                                        "repair_tokens": 0})
        row["pages_deployments"] += int(n)
    if month == quotas.current_month():  # a gauge is a figure of now: only this month's export carries it
        for g in StorageGauge.select().where(StorageGauge.bytes > 0):
            row = rows.setdefault(g.user_id, {"month": month, "user_id": g.user_id, "org_id": None,
                                              "plan": quotas.plan_for(cfg, g.user_id)[0], "builds": 0,
                                              "builds_unfinished": 0, "build_cpu_seconds": 0.0,
                                              "artifact_bytes": 0, "pages_deployments": 0,
                                              "generator_tokens": 0, "repair_attempts": 0, "repair_tokens": 0})
            row["storage_bytes"] = int(g.bytes)
    return [rows[k] for k in sorted(rows)]


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The export as CSV with a header line."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(EXPORT_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in EXPORT_FIELDS})
    return buf.getvalue()


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    """The export as JSON lines, one object per user."""
    return "".join(json.dumps({k: r.get(k) for k in EXPORT_FIELDS}) + "\n" for r in rows)


def by_plan(month: str | None = None) -> dict[str, dict[str, float]]:
    """This month's meters summed per plan (the plan recorded at admission; "none" without one)."""
    month = month or quotas.current_month()
    out: dict[str, dict[str, float]] = {}
    for plan, builds, cpu, stored, pages in database.execute_sql(
            "SELECT coalesce(plan, 'none'), count(*), coalesce(sum(cpu_seconds), 0), coalesce(sum(stored_bytes), 0), "
            "coalesce(sum(pages_deployment), 0) FROM build_usage WHERE month = ? GROUP BY 1", (month,)).fetchall():
        out[str(plan)] = {"builds": float(builds), "build_cpu_seconds": float(cpu), "artifact_bytes": float(stored),
                          "pages_deployments": float(pages)}
    return out
