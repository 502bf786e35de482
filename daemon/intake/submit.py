"""Taking build requests: validate a body, queue a new project's first build or a rebuild, shape the answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daemon.core import diskspace, quotas, ratelimit, versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import Conflict, NotFound
from daemon.core.ids import new_version_id
from daemon.intake import requests
from daemon.intake.requests import BuildRequest as BuildRequest
from daemon.intake.requests import NewProjectBody, RebuildBody
from daemon.project.buildlog import read_tail

if TYPE_CHECKING:
    from daemon.intake.queue import BuildQueue
    from daemon.runtime import Runtime

TERMINAL = ("deployed", "failed")


def parse_build_request(data: Any, *, rebuild: bool, max_prompt: int) -> NewProjectBody | RebuildBody:
    """A build body given as builtins (the dashboard's form): the request struct's own rules; a 400 names the
    first bad field."""
    return requests.parse(data, RebuildBody if rebuild else NewProjectBody, max_prompt=max_prompt)


@dataclass
class Admission:
    """What runs inside the transaction that creates a version (`versions.create`'s admit and on_created): the
    rate caps (the plan's overrides), the plan's quotas (the ledger: this droplet's meter, or the fleet's in
    Postgres), then the version's meter row. The version id is chosen first, so a fleet reserves the very meter
    row the version gets."""

    rt: Runtime
    user_id: str
    project_id: str
    kind: str
    org_id: str | None
    version_id: str = field(default_factory=new_version_id)
    reserved: bool = False

    def __post_init__(self) -> None:
        # Before anything is written: a build below the reserve would fill the disk the version rows, undo and
        # replay state need; 503 disk_full with Retry-After, the same answer as a write that already failed for space.
        diskspace.check_reserve(self.rt.data_dir, self.rt.cfg.limits.disk_reserve_mb * 2**20,
                                what="rollbacks" if self.kind == "rollback" else "new builds")
        # The plan is read before the transaction (a change applies from the next request), keeping the write
        # lock short.
        self.plan_name, self.plan = quotas.plan_for(self.rt.cfg, self.user_id, self.org_id)
        self.meter = quotas.opening_record(self.version_id, self.user_id, self.project_id, self.kind, self.org_id,
                                           self.plan_name)

    def admit(self) -> None:
        """The rate caps, then the quotas (which may reserve the build's meter row in Postgres)."""
        rt, plan = self.rt, self.plan
        if self.kind == "new":
            cap = quotas.rate_cap(rt.cfg, plan, "new_projects_per_user_per_hour")
            ratelimit.hit(f"user-new:{self.user_id}", cap, "new projects per user")
        else:
            cap = quotas.rate_cap(rt.cfg, plan, "rebuilds_per_project_per_hour")
            ratelimit.hit(f"project-rebuild:{self.user_id}:{self.project_id}", cap, "rebuilds per project")
        self.reserved = rt.ledger.check(rt.cfg, self.plan_name, plan, self.meter,
                                        counts_pages=rt.deployer.counts_pages_quota)

    def created(self, v: ProjectVersion) -> None:
        """The version's meter row, the record the ledger reserved."""
        quotas.open_meter(self.rt.outbox, v, self.org_id, self.plan_name, self.meter)

    def create(self, **fields: Any) -> ProjectVersion:
        """`versions.create` with this admission; a reservation whose version was not created is given back."""
        try:
            return versions.create(self.rt.outbox, user_id=self.user_id, project_id=self.project_id, kind=self.kind,
                                   version_id=self.version_id, admit=self.admit, on_created=self.created, **fields)
        except BaseException:
            if self.reserved:
                self.rt.ledger.unreserve(self.version_id)
            raise


def admission(rt: Runtime, user_id: str, project_id: str, kind: str, org_id: str | None = None) -> Admission:
    """The admission of one build of any kind (new, rebuild, rollback): 503 disk_full below the disk reserve."""
    return Admission(rt, user_id, project_id, kind, org_id)


def submit_new(rt: Runtime, queue: BuildQueue, req: NewProjectBody) -> ProjectVersion:
    """Queue the first build of a project: 409 when it exists or is building, 429 past the user's cap."""
    rt.fleet.admit(req.user_id, req.project_id)
    # A project whose builds all failed has nothing to rebuild from, so a new build may start it over.
    if versions.live_version(req.user_id, req.project_id) is not None:
        raise Conflict(f"project {req.project_id} already exists; use /rebuild-preview", code="project_exists")
    v = admission(rt, req.user_id, req.project_id, "new", req.org_id).create(
        prompt=req.prompt, framework=req.framework, target_package=req.target_package, **_opt_out(req))
    return queued(rt, queue, v)


def _opt_out(req: NewProjectBody | RebuildBody) -> dict[str, Any]:
    """The version's `repair` column for a request that said `"repair": false` (the loop leaves it alone)."""
    return {} if req.repair else {"repair": '{"optOut": true}'}


def resolve_base(req: NewProjectBody | RebuildBody) -> ProjectVersion:
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


def submit_rebuild(rt: Runtime, queue: BuildQueue, req: NewProjectBody | RebuildBody) -> ProjectVersion:
    """Queue a refinement of an existing project from its base version."""
    rt.fleet.admit(req.user_id, req.project_id)
    base = resolve_base(req)
    busy = versions.in_flight(req.user_id, req.project_id)
    if busy is not None:
        raise Conflict(f"project {req.project_id} already has build {busy.version_id} {busy.status}",
                       code="build_in_flight", versionId=busy.version_id)
    v = admission(rt, req.user_id, req.project_id, "rebuild", req.org_id).create(
        prompt=req.prompt, framework=req.framework or base.framework, parent_version_id=base.version_id,
        target_package=req.target_package, **_opt_out(req))
    return queued(rt, queue, v)


def queued(rt: Runtime, queue: BuildQueue, v: ProjectVersion) -> ProjectVersion:
    """Hand an accepted version to the worker: on a fleet its row reaches Postgres first (fleet.accepted)."""
    rt.fleet.accepted()
    queue.enqueue(v.version_id)
    rt.sync_nudge()
    return v


def build_answer(rt: Runtime, v: ProjectVersion) -> tuple[int, dict[str, Any]]:
    """The seed's build response for a finished version, or the 202 form for one still running."""
    if v.status == "deployed":
        out = {"success": True, "previewUrl": v.preview_url, "versionId": v.version_id,
               "buildTime": v.build_duration_ms}
        if (alias := rt.fleet.live_alias_url(v.user_id, v.project_id)) is not None:
            out["liveUrl"] = alias  # a fleet's stable address of the project (README "Fleet")
        return 200, out
    if v.status == "failed":
        return 200, {"success": False, "versionId": v.version_id, "buildTime": v.build_duration_ms,
                     "error": {"code": v.failure_reason or "build_failed", "message": v.failure_message or ""},
                     "logTail": read_tail(rt.layout.log_path(v.version_id), rt.cfg.build.keep_logs_lines)}
    out = {"success": True, "versionId": v.version_id, "status": v.status,
           "statusUrl": f"{rt.cfg.base_url}/versions/{v.version_id}",
           "logUrl": f"{rt.cfg.base_url}/versions/{v.version_id}/log"}
    if v.status == "deploying" and (alias := rt.fleet.live_alias_url(v.user_id, v.project_id)) is not None:
        out["liveUrl"] = alias  # uploaded to the live branch (Cloudflare), live once Pages confirms it
    return 202, out
