"""The Cloudflare live alias: each project's Pages branch (`live_branch`) always holds its live version.

Builds and fast rollbacks upload to that branch as they go live; when the pointer moves to a version that is not
the branch's newest deployment (undo/redo), `follow` redeploys that version's stored artifact to the branch, off
the request path (the after-live pool), so the alias `https://<branch>.<pages project>.pages.dev/` follows
(`fleet.live_alias_url` names it). Each redeploy is a row (`alias_redeploys`; in a fleet first in Postgres, under
the lease epoch: the quota ledger, daemon/fleet/ledger.py); a failed one is retried on a persisted schedule.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.core import quotas
from daemon.core.db import AliasRedeploy, AliasRetry, Project, ProjectVersion, utcnow
from daemon.core.errors import AppError
from daemon.core.ids import new_version_id
from daemon.deployers.base import DeployError, DeployRequest
from daemon.project import staging
from daemon.publish import artifacts

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.livealias")

_FOLLOWING = threading.Lock()  # one redeploy at a time, so two pointer moves cannot interleave their uploads
RETRY_BASE_S = 5.0
RETRY_MAX_S = 600.0


def enabled(rt: Runtime) -> bool:
    """True when previews go to Cloudflare Pages (a deployer with branch aliases)."""
    return rt.deployer.supports_alias


def _newest_upload(user_id: str, project_id: str) -> ProjectVersion | None:
    """The newest version uploaded to the branch by a build or rollback (ids sort by creation; one build of a
    project runs at a time, so creation order is upload order)."""
    return (ProjectVersion.select()
            .where((ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id)
                   & ProjectVersion.cf_deployment_id.is_null(False))
            .order_by(ProjectVersion.version_id.desc()).first())


def branch_redeploy(user_id: str, project_id: str) -> AliasRedeploy | None:
    """The redeploy the branch's newest deployment is, or None when it is an upload: a redeploy counts only when
    nothing was uploaded after it. One asked of the platform with no answer yet (`pending`: its droplet died or
    Postgres could not hear the outcome) counts as made, so it is never made twice."""
    newest = _newest_upload(user_id, project_id)
    redeploy = (AliasRedeploy.select()
                .where((AliasRedeploy.user_id == user_id) & (AliasRedeploy.project_id == project_id)
                       & (AliasRedeploy.state != "failed"))
                .order_by(AliasRedeploy.created_at.desc(), AliasRedeploy.id.desc()).first())
    if redeploy is not None and redeploy.over == (newest.version_id if newest is not None else None):
        return redeploy
    return None


def on_branch(user_id: str, project_id: str) -> tuple[str | None, ProjectVersion | None]:
    """(the version the branch's newest deployment holds, the newest upload)."""
    newest = _newest_upload(user_id, project_id)
    redeploy = branch_redeploy(user_id, project_id)
    if redeploy is not None:
        return str(redeploy.version_id), newest
    return (newest.version_id if newest is not None else None), newest


def follow(rt: Runtime, user_id: str, project_id: str) -> None:
    """Redeploy the live version to the project's branch when the branch's newest deployment is another one.

    Runs on the after-live pool (and from the retry schedule); it reads the pointer when it runs, so a burst of
    undos costs one redeploy. A fleet droplet first records the redeploy in Postgres under its lease epoch
    (refused: another droplet has the project, which then moves the alias itself). A failure is retried with
    backoff (`alias_retries`, `retry_due`), surviving restarts.
    """
    if not enabled(rt):
        _done(user_id, project_id)
        return
    with _FOLLOWING:
        rt.fleet.hold(user_id, project_id)
        try:
            _follow(rt, user_id, project_id)
        finally:
            rt.fleet.unhold(user_id, project_id)


def _follow(rt: Runtime, user_id: str, project_id: str) -> None:
    proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
    live = proj.live_version_id if proj is not None else None
    held, newest = on_branch(user_id, project_id)
    if not live or held == live:
        _done(user_id, project_id)
        return
    if newest is not None and held == newest.version_id and newest.status == "deploying":
        _done(user_id, project_id)
        return  # an upload awaiting confirmation: it goes live (no redeploy needed) or fails
    v = ProjectVersion.get_or_none(ProjectVersion.version_id == live)
    zip_path = artifacts.artifact_zip(rt, v) if v is not None else None
    if v is None or zip_path is None:
        log.warning("live alias of %s/%s not moved: no artifact of %s", user_id, project_id, live)
        _done(user_id, project_id)  # a retry cannot bring the artifact back; the next pointer move tries anew
        return
    try:
        lease = rt.fleet.admit(user_id, project_id)
    except AppError as exc:
        log.info("live alias of %s/%s left to the droplet that writes it: %s", user_id, project_id, exc.message)
        _done(user_id, project_id)
        return
    redeploy_id = new_version_id()
    rec: dict[str, Any] = {"redeploy_id": redeploy_id, "user_id": user_id, "project_id": project_id, "version_id": live,
           "over": newest.version_id if newest is not None else None, "month": quotas.month_of(quotas.clock()),
           "epoch": lease.epoch if lease is not None else 0, "holder": lease.holder if lease is not None else ""}
    try:
        if not rt.ledger.begin_redeploy(rec):
            log.warning("live alias of %s/%s not moved: a newer lease holder has the project", user_id, project_id)
            _done(user_id, project_id)
            return
    except AppError as exc:
        _retry_later(user_id, project_id, exc.message)
        return
    row = AliasRedeploy.create(user_id=user_id, project_id=project_id, version_id=live, over=rec["over"],
                               deployment_id="", month=rec["month"], redeploy_id=redeploy_id, state="pending")
    try:
        with tempfile.TemporaryDirectory(dir=rt.layout.tmp) as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            artifacts.extract_artifact(zip_path, out, staging.caps(rt.cfg))
            dep = rt.deployer.deploy(DeployRequest(out_dir=out, user_id=user_id, project_id=project_id,
                                                   version_id=live, message=f"live alias -> {live}"),
                                     lambda line: log.debug("alias %s/%s: %s", user_id, project_id, line))
    except (DeployError, ValueError, zipfile.BadZipFile, OSError) as exc:
        why = exc.message if isinstance(exc, DeployError) else str(exc)
        AliasRedeploy.update(state="failed").where(AliasRedeploy.id == row.id).execute()
        rt.ledger.end_redeploy(redeploy_id, deployment_id=None, failed=why[:500])
        log.warning("live alias of %s/%s not moved to %s: %s", user_id, project_id, live, why)
        _retry_later(user_id, project_id, why)
        return
    AliasRedeploy.update(state="made", deployment_id=dep.deployment_id).where(AliasRedeploy.id == row.id).execute()
    rt.ledger.end_redeploy(redeploy_id, deployment_id=dep.deployment_id)
    _done(user_id, project_id)
    log.info("live alias of %s/%s redeployed %s (%s)", user_id, project_id, live, dep.deployment_id)


# -- the retry schedule --------------------------------------------------------------------------------------

def _done(user_id: str, project_id: str) -> None:
    AliasRetry.delete().where((AliasRetry.user_id == user_id) & (AliasRetry.project_id == project_id)).execute()


def _retry_later(user_id: str, project_id: str, why: str) -> None:
    """Schedule the next attempt: RETRY_BASE_S doubled per failed attempt, at most RETRY_MAX_S apart."""
    row = AliasRetry.get_or_none((AliasRetry.user_id == user_id) & (AliasRetry.project_id == project_id))
    attempts = (int(row.attempts) if row is not None else 0) + 1
    delay = min(RETRY_BASE_S * 2 ** (attempts - 1), RETRY_MAX_S)
    AliasRetry.insert(user_id=user_id, project_id=project_id, attempts=attempts,
                      next_at=utcnow() + timedelta(seconds=delay), last_error=why[:500]) \
        .on_conflict_replace().execute()
    log.info("live alias of %s/%s: attempt %d failed, next in %g s", user_id, project_id, attempts, delay)


def schedule(user_id: str, project_id: str) -> None:
    """Check the project's alias at the next retry pass (a droplet that took the project over)."""
    AliasRetry.insert(user_id=user_id, project_id=project_id, attempts=0, next_at=utcnow()) \
        .on_conflict_ignore().execute()


def retry_due(rt: Runtime) -> int:
    """The scheduler's pass: follow every project whose retry is due; how many were tried."""
    due = list(AliasRetry.select().where(AliasRetry.next_at <= utcnow()).order_by(AliasRetry.next_at).limit(20))
    for row in due:
        try:
            follow(rt, row.user_id, row.project_id)
        except Exception as exc:  # one project's failure must not stop the others
            log.exception("live alias retry of %s/%s failed", row.user_id, row.project_id)
            _retry_later(row.user_id, row.project_id, f"{type(exc).__name__}: {exc}")
    return len(due)


def redeploys_this_month(month: str, user_id: str | None = None) -> int:
    """Alias redeploys made in `month` (YYYY-MM), all users' or one user's: Pages deployments like builds'."""
    q = AliasRedeploy.select().where((AliasRedeploy.month == month) & (AliasRedeploy.state != "failed"))
    if user_id is not None:
        q = q.where(AliasRedeploy.user_id == user_id)
    return int(q.count())
