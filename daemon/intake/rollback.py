"""Rollback: a new version equal to an older one, its artifact redeployed (fast) or its sources rebuilt (slow)."""

from __future__ import annotations

import logging
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.core import diskspace, versions
from daemon.core.db import ACTIVE_STATUSES, ProjectVersion
from daemon.core.errors import Conflict, NotFound
from daemon.core.ids import check_org_id, check_project_ids
from daemon.deployers.base import DeployError, DeployRequest
from daemon.intake import submit
from daemon.project import staging
from daemon.publish import deploywatch, golive
from daemon.publish.artifacts import artifact_zip as _artifact_zip
from daemon.publish.artifacts import extract_artifact

if TYPE_CHECKING:
    from daemon.intake.queue import BuildQueue
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.rollback")


def _target(user_id: str, project_id: str, target_id: str) -> ProjectVersion:
    t = versions.get(target_id)
    if (t.user_id, t.project_id) != (user_id, project_id):
        raise NotFound(f"version {target_id} not found in project {user_id}/{project_id}", code="version_not_found")
    if t.status == "failed":
        raise Conflict(f"version {target_id} failed ({t.failure_reason}); only deployed versions can be rolled back to",
                       code="target_failed", versionId=target_id)
    if t.status in ACTIVE_STATUSES:
        raise Conflict(f"version {target_id} is still {t.status}", code="version_building", versionId=target_id)
    return t


def rollback(rt: Runtime, queue: BuildQueue, user_id: Any, project_id: Any, target_id: str,
             org_id: str | None = None) -> ProjectVersion:
    """A new version equal to the target: redeploy its artifact (fast), else rebuild its sources (slow)."""
    check_project_ids(user_id, project_id)
    rt.fleet.admit(user_id, project_id)
    if org_id is not None:
        check_org_id(org_id)
    t = _target(user_id, project_id, target_id)
    adm = submit.admission(rt, user_id, project_id, "rollback", org_id)
    zip_path = _artifact_zip(rt, t)
    status = "deploying" if zip_path is not None else "queued"
    v = adm.create(prompt=f"rollback to {t.version_id}", framework=t.framework, parent_version_id=t.version_id,
                   rollback_of=t.version_id, status=status, target_package=t.target_package)
    if zip_path is None:
        return submit.queued(rt, queue, v)
    rt.fleet.accepted()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(dir=rt.layout.tmp) as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            extract_artifact(zip_path, out, staging.caps(rt.cfg))
            dep = rt.deployer.deploy(DeployRequest(out_dir=out, user_id=user_id, project_id=project_id,
                                                   version_id=v.version_id, message=v.prompt), lambda _l: None)
        _tag_like(rt, t, v)
    except (DeployError, ValueError, zipfile.BadZipFile, OSError) as exc:
        msg = exc.message if isinstance(exc, DeployError) else f"artifact unusable: {exc}"
        if diskspace.is_disk_full(exc):  # the artifact is fine: say what really stopped the redeploy
            msg = diskspace.disk_full(rt.data_dir, exc, what="the redeploy").message
        v = versions.update(rt.outbox, v.version_id, status="failed", failure_reason="deploy_failed",
                            failure_message=msg)
        rt.notify(v.version_id)
        return v
    fields: dict[str, Any] = {
        "preview_url": dep.url, "artifact_url": t.artifact_url, "output_size_bytes": t.output_size_bytes,
        "node_version": t.node_version, "pnpm_version": t.pnpm_version,
        "build_duration_ms": int((time.monotonic() - started) * 1000), "deploy_duration_ms": None,
        "cf_deployment_id": dep.deployment_id if rt.deployer.records_deployment_id else None,
        "checks": t.checks,  # the same sources as the target: its checks hold for this version too
        "add_timings": {"deploy": int((time.monotonic() - started) * 1000)},
    }
    if (lost := rt.fleet.lost_lease(user_id, project_id)) is not None:
        v = versions.update(rt.outbox, v.version_id, status="failed", failure_reason="interrupted",
                            failure_message=lost)
        rt.notify(v.version_id)
        return v
    if dep.state == "deployed":
        v = golive.make_live(rt, v.version_id, **fields)
    else:
        v = versions.update(rt.outbox, v.version_id, **fields)
        deploywatch.watch(rt, v)
    rt.notify(v.version_id)
    # The same bookkeeping as a build's: the version's commit goes into a recovery pack and the dist window
    # slides; the render check runs in its pool, so the answer does not wait for the browser.
    golive.after_live(rt, v, inline=False)
    return v


def _tag_like(rt: Runtime, t: ProjectVersion, v: ProjectVersion) -> None:
    """Give the rollback version its own source commit: the target's tree, with the target as parent."""
    repo = rt.repo(t.user_id, t.project_id)
    with repo.writing():
        if not repo.has_version(t.version_id):
            return
        repo.tag_tree(t.version_id, v.version_id, f"rollback to {t.version_id}")  # the same tree, nothing read
