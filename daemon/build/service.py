"""Service functions behind the API, daemonctl and the worker: submit builds, answer reads, shape responses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peewee import fn

from daemon.build.buildlog import read_tail
from daemon.core import ratelimit, versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import BadRequest, Conflict, NotFound
from daemon.core.ids import valid_id, valid_version_id

if TYPE_CHECKING:
    from daemon.build.queue import BuildQueue
    from daemon.runtime import Runtime

FRAMEWORKS = ("react", "nextjs", "vue", "svelte")
TERMINAL = ("deployed", "failed")


@dataclass(frozen=True)
class BuildRequest:
    """A validated request for a new project build or a rebuild."""

    user_id: str
    project_id: str
    prompt: str
    framework: str | None = None
    base_version_id: str | None = None


def _field(data: dict[str, Any], name: str, *, required: bool, kind: type = str) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required", code="missing_field", field=name)
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadRequest(f"{name} must be a {kind.__name__}", code="invalid_field", field=name)
    return value


def parse_build_request(data: Any, *, rebuild: bool, max_prompt: int) -> BuildRequest:
    """Validate a build body; a 400 names the first bad field."""
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    user_id = _field(data, "userId", required=True)
    project_id = _field(data, "projectId", required=True)
    prompt = _field(data, "prompt", required=True)
    for name, value in (("userId", user_id), ("projectId", project_id)):
        if not valid_id(value):
            raise BadRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -", code="invalid_field", field=name)
    if not prompt.strip():
        raise BadRequest("prompt must not be empty", code="invalid_field", field="prompt")
    if len(prompt) > max_prompt:
        raise BadRequest(f"prompt is longer than {max_prompt} characters", code="invalid_field", field="prompt")
    if "\x00" in prompt:
        raise BadRequest("prompt must not contain NUL characters", code="invalid_field", field="prompt")
    framework = _field(data, "framework", required=False)
    if framework is not None and framework not in FRAMEWORKS:
        raise BadRequest(f"framework must be one of {', '.join(FRAMEWORKS)}", code="invalid_field",
                         field="framework")
    base = None
    if rebuild:
        base = _field(data, "baseVersionId", required=False)
        if base is not None and not valid_version_id(base):
            raise BadRequest("baseVersionId must be a version id (ULID)", code="invalid_field", field="baseVersionId")
    return BuildRequest(user_id, project_id, prompt, framework, base)


def submit_new(rt: Runtime, queue: BuildQueue, req: BuildRequest) -> ProjectVersion:
    """Queue the first build of a project: 409 when it exists or is building, 429 past the user's cap."""
    # A project whose builds all failed has nothing to rebuild from, so a new build may start it over.
    if versions.live_version(req.user_id, req.project_id) is not None:
        raise Conflict(f"project {req.project_id} already exists; use /rebuild-preview", code="project_exists")
    cap = rt.cfg.rate_limits.new_projects_per_user_per_hour
    v = versions.create(rt.outbox, user_id=req.user_id, project_id=req.project_id, prompt=req.prompt, kind="new",
                        framework=req.framework,
                        admit=lambda: ratelimit.hit(f"user-new:{req.user_id}", cap, "new projects per user"))
    queue.enqueue(v.version_id)
    rt.sync_nudge()
    return v


def resolve_base(req: BuildRequest) -> ProjectVersion:
    """The version a rebuild starts from: the given one, else the latest deployed (404 when none)."""
    if req.base_version_id:
        base = ProjectVersion.get_or_none(ProjectVersion.version_id == req.base_version_id)
        if base is None or base.user_id != req.user_id or base.project_id != req.project_id:
            raise NotFound(f"base version {req.base_version_id} not found in project {req.project_id}",
                           code="base_not_found")
        if base.status != "deployed":
            raise Conflict(f"base version {base.version_id} is {base.status}; only deployed versions can be a base",
                           code="base_not_deployed")
        return base
    if not versions.project_exists(req.user_id, req.project_id):
        raise NotFound(f"project {req.user_id}/{req.project_id} not found", code="project_not_found")
    base = versions.live_version(req.user_id, req.project_id)
    if base is None:
        busy = versions.in_flight(req.user_id, req.project_id)
        if busy is not None:
            raise Conflict(f"project {req.project_id} has no deployed version yet; build {busy.version_id} is "
                           f"{busy.status}", code="build_in_flight", versionId=busy.version_id)
        raise NotFound(f"project {req.project_id} has no deployed version to rebuild from", code="base_not_found")
    return base


def submit_rebuild(rt: Runtime, queue: BuildQueue, req: BuildRequest) -> ProjectVersion:
    """Queue a refinement of an existing project from its base version."""
    base = resolve_base(req)
    busy = versions.in_flight(req.user_id, req.project_id)
    if busy is not None:
        raise Conflict(f"project {req.project_id} already has build {busy.version_id} {busy.status}",
                       code="build_in_flight", versionId=busy.version_id)
    bucket = f"project-rebuild:{req.user_id}:{req.project_id}"
    cap = rt.cfg.rate_limits.rebuilds_per_project_per_hour
    v = versions.create(rt.outbox, user_id=req.user_id, project_id=req.project_id, prompt=req.prompt,
                        kind="rebuild", framework=req.framework or base.framework,
                        parent_version_id=base.version_id,
                        admit=lambda: ratelimit.hit(bucket, cap, "rebuilds per project"))
    queue.enqueue(v.version_id)
    rt.sync_nudge()
    return v


def get_version(version_id: str) -> ProjectVersion:
    """A version by id, or 404."""
    if not valid_version_id(version_id):
        raise NotFound(f"version {version_id} not found", code="version_not_found")
    v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
    if v is None:
        raise NotFound(f"version {version_id} not found", code="version_not_found")
    return v


def build_answer(rt: Runtime, v: ProjectVersion) -> tuple[int, dict[str, Any]]:
    """The seed's build response for a finished version, or the 202 form for one still running."""
    if v.status == "deployed":
        return 200, {"success": True, "previewUrl": v.preview_url, "versionId": v.version_id,
                     "buildTime": v.build_duration_ms}
    if v.status == "failed":
        return 200, {"success": False, "versionId": v.version_id, "buildTime": v.build_duration_ms,
                     "error": {"code": v.failure_reason or "build_failed", "message": v.failure_message or ""},
                     "logTail": read_tail(rt.log_path(v.version_id), rt.cfg.build.keep_logs_lines)}
    return 202, {"success": True, "versionId": v.version_id, "status": v.status,
                 "statusUrl": f"{rt.cfg.base_url}/versions/{v.version_id}",
                 "logUrl": f"{rt.cfg.base_url}/versions/{v.version_id}/log"}


def version_json(v: ProjectVersion) -> dict[str, Any]:
    """A version as the API shows it (camelCase, like the seed's shapes)."""
    return {
        "versionId": v.version_id,
        "userId": v.user_id,
        "projectId": v.project_id,
        "prompt": v.prompt,
        "status": v.status,
        "kind": v.kind,
        "parentVersionId": v.parent_version_id,
        "rollbackOf": v.rollback_of,
        "previewUrl": v.preview_url,
        "artifactUrl": v.artifact_url,
        "framework": v.framework,
        "buildDurationMs": v.build_duration_ms,
        "installDurationMs": v.install_duration_ms,
        "installSkipped": bool(v.install_skipped),
        "deployDurationMs": v.deploy_duration_ms,
        "outputSizeBytes": v.output_size_bytes,
        "failureReason": v.failure_reason,
        "failureMessage": v.failure_message,
        "auditStatus": v.audit_status,
        "needsRebuild": bool(v.needs_rebuild),
        "pinned": bool(v.pinned),
        "cfDeploymentId": v.cf_deployment_id,
        "nodeVersion": v.node_version,
        "pnpmVersion": v.pnpm_version,
        "renderStatus": v.render_status,
        "renderDetail": json.loads(v.render_detail) if v.render_detail else None,
        "createdAt": _iso(v.created_at),
        "updatedAt": _iso(v.updated_at),
    }


def _iso(d: Any) -> str | None:
    if d is None:
        return None
    return d.isoformat(timespec="milliseconds") + "Z" if d.tzinfo is None else d.isoformat(timespec="milliseconds")


def history(user_id: Any, project_id: Any, limit: int = 200) -> list[dict[str, Any]]:
    """History panel: a project's versions, newest first."""
    for name, value in (("userId", user_id), ("projectId", project_id)):
        if not valid_id(value):
            raise BadRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -", code="invalid_field", field=name)
    return [version_json(v) for v in versions.history(user_id, project_id, limit=limit)]


def status_report(rt: Runtime, queue: BuildQueue) -> dict[str, Any]:
    """What `daemonctl status` shows."""
    import psutil

    from daemon.core.db import ProjectVersion as PV

    counts: dict[str, int] = dict(PV.select(PV.status, fn.COUNT(PV.version_id)).group_by(PV.status).tuples())  # type: ignore[arg-type]
    disk = psutil.disk_usage(str(rt.data_dir))
    backlog = rt.sync_loop.outbox.backlog() if rt.sync_loop is not None else {}
    tc: dict[str, Any]
    try:
        t = rt.toolchain()
        tc = {"node": t.node_version, "pnpm": t.pnpm_version}
    except RuntimeError as exc:
        tc = {"error": str(exc)}
    building = [v.version_id for v in PV.select(PV.version_id).where(PV.status.in_(("building", "deploying")))]
    return {
        "versions": counts,
        "queue": {"pending": queue.pending(), "running": building},
        "sandbox": {"layer": rt.sandbox_layer},
        "generator": rt.generator.name,
        "deployer": rt.deployer.name,
        "sync": backlog,
        "toolchain": tc,
        "disk": {"dataDir": str(rt.data_dir), "freeBytes": disk.free, "usedPercent": disk.percent},
    }
