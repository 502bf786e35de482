"""Moving along a project's history: diffs between versions, rollback, undo/redo, restore from packs."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.build.service import get_version
from daemon.core import ratelimit, versions
from daemon.core.db import ACTIVE_STATUSES, Project, ProjectVersion, database, utcnow
from daemon.core.errors import BadRequest, Conflict, NotFound, Unavailable
from daemon.core.ids import valid_id
from daemon.deployers.base import DeployError, DeployRequest
from daemon.history import HistoryError, ProjectRepo

if TYPE_CHECKING:
    from daemon.build.queue import BuildQueue
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.timeline")

DIFF_MODES = ("patch", "stat", "files", "visual", "visual-stats")


def _check_ids(user_id: Any, project_id: Any) -> None:
    for name, value in (("userId", user_id), ("projectId", project_id)):
        if not valid_id(value):
            raise BadRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -", code="invalid_field", field=name)


def diff(rt: Runtime, a_id: str, b_id: str, mode: str) -> Any:
    """The change from version a to version b: a unified patch, a per-file stat, or the changed paths."""
    if mode not in DIFF_MODES:
        raise BadRequest(f"mode must be one of {', '.join(DIFF_MODES)}", code="invalid_field", field="mode")
    a, b = get_version(a_id), get_version(b_id)
    if (a.user_id, a.project_id) != (b.user_id, b.project_id):
        raise BadRequest("the two versions belong to different projects", code="different_projects")
    for v in (a, b):
        if v.status in ("queued", "building"):
            raise Conflict(f"version {v.version_id} is still {v.status}", code="version_building",
                           versionId=v.version_id)
    repo = rt.repo(a.user_id, a.project_id)
    for v in (a, b):
        if not repo.has_version(v.version_id):
            raise Conflict(f"version {v.version_id} has no source snapshot (it failed before one was taken)",
                           code="no_snapshot", versionId=v.version_id)
    try:
        return repo.diff(a.version_id, b.version_id, mode)  # type: ignore[arg-type]
    except HistoryError as exc:
        raise Conflict(exc.message or exc.code, code=exc.code) from exc


def _target(user_id: str, project_id: str, target_id: str) -> ProjectVersion:
    t = get_version(target_id)
    if (t.user_id, t.project_id) != (user_id, project_id):
        raise NotFound(f"version {target_id} not found in project {user_id}/{project_id}", code="version_not_found")
    if t.status == "failed":
        raise Conflict(f"version {target_id} failed ({t.failure_reason}); only deployed versions can be rolled back to",
                       code="target_failed", versionId=target_id)
    if t.status in ACTIVE_STATUSES:
        raise Conflict(f"version {target_id} is still {t.status}", code="version_building", versionId=target_id)
    return t


def _artifact_zip(rt: Runtime, t: ProjectVersion) -> Path | None:
    """The target's artifact zip on local disk (fetched from the remote store if only it has it)."""
    key = rt.artifact_key(t.user_id, t.project_id, t.version_id)
    local = rt.local_objects_path(key)
    if local.is_file():
        return local
    try:
        if rt.local_objects.exists(key):  # archived by the retention cleanup: still on this disk
            rt.local_objects.get_file(key, local)
            return local
    except Exception:
        log.warning("could not read archived %s", key, exc_info=True)
    if rt.remote_objects is not None:
        try:
            if rt.remote_objects.exists(key):
                rt.remote_objects.get_file(key, local)
                return local
        except Exception:
            log.warning("could not fetch %s from the object store", key, exc_info=True)
    return None


def _extract(zip_path: Path, dest: Path) -> None:
    """Unpack an artifact zip, refusing entries that would land outside dest or are links."""
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise ValueError(f"artifact entry {info.filename!r} is a link")
            target = (dest / info.filename).resolve()
            if not str(target).startswith(str(root) + "/"):
                raise ValueError(f"artifact entry {info.filename!r} escapes the output dir")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)


def rollback(rt: Runtime, queue: BuildQueue, user_id: Any, project_id: Any, target_id: str) -> ProjectVersion:
    """A new version equal to the target: redeploy its artifact (fast), else rebuild its sources (slow)."""
    _check_ids(user_id, project_id)
    t = _target(user_id, project_id, target_id)
    bucket = f"project-rebuild:{user_id}:{project_id}"
    cap = rt.cfg.rate_limits.rebuilds_per_project_per_hour
    zip_path = _artifact_zip(rt, t)
    status = "deploying" if zip_path is not None else "queued"
    v = versions.create(rt.outbox, user_id=user_id, project_id=project_id, prompt=f"rollback to {t.version_id}",
                        kind="rollback", framework=t.framework, parent_version_id=t.version_id,
                        rollback_of=t.version_id, status=status,
                        admit=lambda: ratelimit.hit(bucket, cap, "rebuilds per project"))
    if zip_path is None:
        queue.enqueue(v.version_id)
        rt.sync_nudge()
        return v
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(dir=rt.data_dir / "tmp") as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            _extract(zip_path, out)
            dep = rt.deployer.deploy(DeployRequest(out_dir=out, user_id=user_id, project_id=project_id,
                                                   version_id=v.version_id, message=v.prompt), lambda _l: None)
        _tag_like(rt, t, v)
    except (DeployError, ValueError, zipfile.BadZipFile, OSError) as exc:
        msg = exc.message if isinstance(exc, DeployError) else f"artifact unusable: {exc}"
        v = versions.update(rt.outbox, v.version_id, status="failed", failure_reason="deploy_failed",
                            failure_message=msg)
        rt.notify(v.version_id)
        return v
    fields: dict[str, Any] = {
        "preview_url": dep.url, "artifact_url": t.artifact_url, "output_size_bytes": t.output_size_bytes,
        "node_version": t.node_version, "pnpm_version": t.pnpm_version,
        "build_duration_ms": int((time.monotonic() - started) * 1000), "deploy_duration_ms": None,
        "cf_deployment_id": dep.deployment_id if rt.deployer.name != "local" else None,
    }
    if dep.state == "deployed":
        v = rt.mark_deployed(v.version_id, fields)
        rt.schedule_render_check(v.version_id)
    else:
        v = versions.update(rt.outbox, v.version_id, **fields)
        rt.watch_deployment(v)
    rt.notify(v.version_id)
    rt.sync_nudge()
    return v


def _tag_like(rt: Runtime, t: ProjectVersion, v: ProjectVersion) -> None:
    """Give the rollback version its own source commit: the target's tree, with the target as parent."""
    with rt.repo_lock(t.user_id, t.project_id):
        repo = rt.repo(t.user_id, t.project_id)
        if not repo.has_version(t.version_id):
            return
        with tempfile.TemporaryDirectory(dir=rt.data_dir / "tmp") as tmp:
            repo.checkout(t.version_id, Path(tmp))
            repo.snapshot(Path(tmp), v.version_id, t.version_id, f"rollback to {t.version_id}")


def _walk(rt: Runtime, user_id: Any, project_id: Any, direction: str) -> ProjectVersion:
    _check_ids(user_id, project_id)
    with database.atomic("IMMEDIATE"):
        proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
        if proj is None:
            raise NotFound(f"project {user_id}/{project_id} not found", code="project_not_found")
        src, dst = ("undo", "redo") if direction == "undo" else ("redo", "undo")
        stack, other = proj.stack(src), proj.stack(dst)
        while stack:
            candidate = ProjectVersion.get_or_none(ProjectVersion.version_id == stack.pop())
            # a version whose preview the retention cleanup removed cannot be made live without a rebuild
            if candidate is not None and candidate.status == "deployed" and candidate.preview_url:
                break
        else:
            raise Conflict(f"nothing to {direction}", code=f"nothing_to_{direction}")
        if proj.live_version_id:
            other.append(proj.live_version_id)
        setattr(proj, f"{src}_stack", json.dumps(stack))
        setattr(proj, f"{dst}_stack", json.dumps(other))
        proj.save()
        versions.set_live(rt.outbox, candidate, rt.cfg.kv.ttl_days * 86400, walk=direction)
    rt.pointer_moved()
    return candidate


def undo(rt: Runtime, user_id: Any, project_id: Any) -> ProjectVersion:
    """Make the previously live version live again (no rebuild); 409 when there is nothing to undo."""
    return _walk(rt, user_id, project_id, "undo")


def redo(rt: Runtime, user_id: Any, project_id: Any) -> ProjectVersion:
    """Step forward again after an undo; a new build clears the redo stack."""
    return _walk(rt, user_id, project_id, "redo")


def navigation(user_id: str, project_id: str) -> dict[str, Any]:
    """The live version and what undo/redo would reach."""
    proj = Project.get_or_none((Project.user_id == user_id) & (Project.project_id == project_id))
    if proj is None:
        return {"liveVersionId": None, "undo": [], "redo": []}
    return {"liveVersionId": proj.live_version_id, "undo": proj.stack("undo")[::-1], "redo": proj.stack("redo")[::-1]}


def restore(rt: Runtime, user_id: Any, project_id: Any) -> dict[str, Any]:
    """Rebuild a project's repository from the packs in object storage (and its rows from the replica)."""
    _check_ids(user_id, project_id)
    prefix = f"{user_id}/{project_id}/packs/"
    keys = set(rt.local_objects.list(prefix))
    if rt.remote_objects is not None:
        try:
            keys |= set(rt.remote_objects.list(prefix))
        except Exception as exc:
            raise Unavailable(f"cannot list packs in the object store: {exc}", code="restore_failed") from exc
    if not keys:
        raise NotFound(f"no packs stored for {user_id}/{project_id}", code="no_packs")

    def top_of(key: str) -> str:
        return key.rsplit("_to_", 1)[-1].removesuffix(".pack.zip")

    packs: list[tuple[str, bytes]] = []
    for key in sorted(keys, key=top_of):
        local = rt.local_objects_path(key)
        try:
            if local.is_file():
                data = local.read_bytes()
            elif rt.remote_objects is not None:
                data = rt.remote_objects.open_bytes(key)
            else:
                raise FileNotFoundError(key)
        except Exception as exc:
            raise Unavailable(f"pack {key} unreadable: {exc}", code="missing_pack", pack=key) from exc
        packs.append((key, data))
    rows = _restore_rows(rt, user_id, project_id)
    path = rt.project_dir(user_id, project_id) / "repo.git"
    with rt.repo_lock(user_id, project_id):
        if path.exists():
            raise Conflict(f"project {user_id}/{project_id} already has a repository; restore only fills an empty "
                           "data dir", code="repo_exists")
        try:
            repo = ProjectRepo.restore(path, packs)
        except HistoryError as exc:
            raise Unavailable(exc.message or exc.code, code=exc.code, **{k: str(v) for k, v in exc.detail.items()}) \
                from exc
    return {"userId": user_id, "projectId": project_id, "packs": len(packs),
            "versions": len(repo.versions()), "rowsRestored": rows}


def _restore_rows(rt: Runtime, user_id: str, project_id: str) -> int:
    """Copy version rows the local database lacks from the Postgres replica (when one is configured)."""
    if rt.replica is None:
        return 0
    try:
        remote = rt.replica.fetch_versions(user_id, project_id)
    except Exception as exc:
        raise Unavailable(f"cannot read version rows from the replica: {exc}", code="restore_failed") from exc
    added = 0
    for rec in remote:
        if ProjectVersion.get_or_none(ProjectVersion.version_id == rec["version_id"]) is not None:
            continue
        fields = {k: rec.get(k) for k in (
            "version_id", "user_id", "project_id", "prompt", "parent_version_id", "preview_url", "artifact_url",
            "framework", "build_duration_ms", "output_size_bytes", "status", "needs_rebuild", "base_snapshot_id",
            "cf_deployment_id", "node_version", "pnpm_version", "failure_reason", "pinned", "rollback_of")}
        fields["claude_json"] = json.dumps(rec["claude_json"]) if rec.get("claude_json") is not None else None
        fields["row_version"] = int(rec.get("row_version") or 1)
        fields["updated_at"] = utcnow()
        ProjectVersion.create(**fields)
        added += 1
    return added
