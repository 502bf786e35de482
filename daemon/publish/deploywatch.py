"""Turning a platform's later confirmation into exactly one status change: the webhook and the polling fallback."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.db import PendingDeployment, ProjectVersion, database, utcnow
from daemon.core.events import DeploySettled
from daemon.deployers.base import DeployError
from daemon.publish import golive

if TYPE_CHECKING:
    from daemon.deployers.cloudflare.webhook import PagesEvent
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.deploywatch")


def watch(rt: Runtime, v: ProjectVersion) -> None:
    """Start waiting on a pending deployment: polled once `poll_after_s` has passed without a webhook."""
    now = utcnow()
    PendingDeployment.insert(version_id=v.version_id, deployment_id=v.cf_deployment_id, uploaded_at=now,
                             next_poll_at=now + timedelta(seconds=rt.cfg.deploy.poll_after_s)
                             ).on_conflict_replace().execute()


def resume(rt: Runtime) -> int:
    """At start: every version still deploying with a deployment id gets (back) its pending row."""
    added = 0
    for v in ProjectVersion.select().where((ProjectVersion.status == "deploying")
                                           & ProjectVersion.cf_deployment_id.is_null(False)):
        if PendingDeployment.get_or_none(PendingDeployment.version_id == v.version_id) is None:
            watch(rt, v)
            added += 1
    return added


def settle(rt: Runtime, version_id: str, state: str, detail: str = "", via: str = "webhook") -> bool:
    """Apply a final deployment state once; False when the version was no longer waiting (a replay)."""
    with database.atomic("IMMEDIATE"):
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
        PendingDeployment.delete().where(PendingDeployment.version_id == version_id).execute()
        if v is None or v.status != "deploying":
            return False
        if state == "deployed":
            # Live in the same transaction that removed the pending row, so a replayed webhook or a racing
            # poll sees the version settled and changes nothing.
            golive.make_live(rt, version_id, in_transaction=True)
        else:
            versions.update(rt.outbox, version_id, status="failed", failure_reason="deploy_failed",
                            failure_message=f"deployment {v.cf_deployment_id} {detail or 'failed'} ({via})")
    if state == "deployed":
        golive.pointer_moved(rt.kv, rt.sync_loop)
        golive.check_render(rt, version_id, inline=False)
    else:
        rt.sync_nudge()
    log.info("version %s %s by %s", version_id, state, via)
    rt.notify(version_id)
    rt.events.publish(DeploySettled(version_id, state, via))
    return True


def handle_event(rt: Runtime, event: PagesEvent) -> dict[str, Any]:
    """Act on a verified Pages notification; unknown deployments are acknowledged and logged, never retried."""
    if not event.deployment_id:
        log.info("pages webhook without a deployment id (test message?): %s", event.raw)
        return {"ok": True, "matched": False}
    v = ProjectVersion.get_or_none(ProjectVersion.cf_deployment_id == event.deployment_id)
    if v is None:
        log.warning("pages webhook for unknown deployment %s: %s", event.deployment_id, event.raw)
        return {"ok": True, "matched": False}
    if event.state not in ("deployed", "failed"):
        return {"ok": True, "matched": True, "changed": False, "versionId": v.version_id}
    changed = settle(rt, v.version_id, event.state, via="webhook")
    return {"ok": True, "matched": True, "changed": changed, "versionId": v.version_id}


def poll_due(rt: Runtime) -> dict[str, int]:
    """The fallback: ask the platform about deployments unconfirmed past the grace period; give up at the deadline."""
    now = utcnow()
    counts = {"polled": 0, "deployed": 0, "failed": 0, "pending": 0, "errors": 0}
    due = list(PendingDeployment.select().where(PendingDeployment.next_poll_at <= now)
               .order_by(PendingDeployment.next_poll_at).limit(50))
    give_up = timedelta(seconds=rt.cfg.deploy.give_up_after_s)
    interval = timedelta(seconds=rt.cfg.deploy.poll_interval_s)
    for row in due:
        if now - row.uploaded_at > give_up:
            settle(rt, row.version_id, "failed", f"not confirmed within {int(give_up.total_seconds())}s", via="poll")
            counts["failed"] += 1
            continue
        counts["polled"] += 1
        try:
            dep = rt.deployer.status(row.deployment_id)
        except DeployError as exc:
            if exc.retry_after_s is not None:
                # Rate limited: back off every pending poll, the limit is per token, not per deployment.
                later = utcnow() + timedelta(seconds=max(exc.retry_after_s, interval.total_seconds()))
                PendingDeployment.update(next_poll_at=later, last_error=exc.message[:500]).execute()
                counts["errors"] += 1
                break
            if not exc.retryable and exc.status == 404:
                settle(rt, row.version_id, "failed", "not found on the platform", via="poll")
                counts["failed"] += 1
                continue
            backoff = interval * min(2 ** row.polls, 16)
            PendingDeployment.update(next_poll_at=utcnow() + backoff, polls=row.polls + 1,
                                     last_error=exc.message[:500]).where(
                PendingDeployment.version_id == row.version_id).execute()
            counts["errors"] += 1
            continue
        if dep.state in ("deployed", "failed"):
            settle(rt, row.version_id, dep.state, dep.detail, via="poll")
            counts[dep.state] += 1
        else:
            PendingDeployment.update(next_poll_at=utcnow() + interval, polls=row.polls + 1, last_error=None).where(
                PendingDeployment.version_id == row.version_id).execute()
            counts["pending"] += 1
    return counts
