"""The Cloudflare live alias: each project's Pages branch (`live_branch`) always holds its live version.

Builds and fast rollbacks upload to that branch as they go live; when the pointer moves to a version that is not
the branch's newest deployment (undo/redo), `follow` redeploys that version's stored artifact to the branch, off
the request path (the after-live pool), so the alias `https://<branch>.<pages project>.pages.dev/` follows
(`fleet.live_alias_url` names it).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core import quotas
from daemon.core.db import AliasRedeploy, Project, ProjectVersion
from daemon.deployers.base import DeployError, DeployRequest
from daemon.project import staging
from daemon.publish import artifacts

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.livealias")

_FOLLOWING = threading.Lock()  # one redeploy at a time, so two pointer moves cannot interleave their uploads


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


def on_branch(user_id: str, project_id: str) -> tuple[str | None, ProjectVersion | None]:
    """(the version the branch's newest deployment holds, the newest upload): a redeploy counts only when
    nothing was uploaded after it."""
    newest = _newest_upload(user_id, project_id)
    newest_id = newest.version_id if newest is not None else None
    redeploy = (AliasRedeploy.select()
                .where((AliasRedeploy.user_id == user_id) & (AliasRedeploy.project_id == project_id))
                .order_by(AliasRedeploy.id.desc()).first())
    if redeploy is not None and redeploy.over == newest_id:
        return str(redeploy.version_id), newest
    return newest_id, newest


def follow(rt: Runtime, user_id: str, project_id: str) -> None:
    """Redeploy the live version to the project's branch when the branch's newest deployment is another one.

    Runs on the after-live pool; it reads the pointer when it runs, so a burst of undos costs one redeploy.
    A failure is logged: the alias stays on the older deployment until the next pointer move.
    """
    if not enabled(rt):
        return
    with _FOLLOWING:
        proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
        live = proj.live_version_id if proj is not None else None
        if not live:
            return
        held, newest = on_branch(user_id, project_id)
        if held == live:
            return
        if newest is not None and held == newest.version_id and newest.status == "deploying":
            return  # an upload awaiting confirmation: it goes live (no redeploy needed) or fails
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == live)
        zip_path = artifacts.artifact_zip(rt, v) if v is not None else None
        if v is None or zip_path is None:
            log.warning("live alias of %s/%s not moved: no artifact of %s", user_id, project_id, live)
            return
        try:
            with tempfile.TemporaryDirectory(dir=rt.layout.tmp) as tmp:
                out = Path(tmp) / "out"
                out.mkdir()
                artifacts.extract_artifact(zip_path, out, staging.caps(rt.cfg))
                dep = rt.deployer.deploy(DeployRequest(out_dir=out, user_id=user_id, project_id=project_id,
                                                       version_id=live, message=f"live alias -> {live}"),
                                         lambda line: log.debug("alias %s/%s: %s", user_id, project_id, line))
        except (DeployError, ValueError, zipfile.BadZipFile, OSError) as exc:
            log.warning("live alias of %s/%s not moved to %s: %s", user_id, project_id, live,
                        exc.message if isinstance(exc, DeployError) else exc)
            return
        AliasRedeploy.create(user_id=user_id, project_id=project_id, version_id=live,
                             over=newest.version_id if newest is not None else None,
                             deployment_id=dep.deployment_id, month=quotas.month_of(quotas.clock()))
        log.info("live alias of %s/%s redeployed %s (%s)", user_id, project_id, live, dep.deployment_id)


def redeploys_this_month(month: str, user_id: str | None = None) -> int:
    """Alias redeploys made in `month` (YYYY-MM), all users' or one user's: Pages deployments like builds'."""
    q = AliasRedeploy.select().where(AliasRedeploy.month == month)
    if user_id is not None:
        q = q.where(AliasRedeploy.user_id == user_id)
    return int(q.count())
