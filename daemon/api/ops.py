"""Operations routes: status, liveness and health detail, Prometheus metrics, sync flush/verify, cleanup."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromQuery

from daemon.api.docs import errors
from daemon.api.guards import ops_jobs, ops_reader, rt, signed
from daemon.core import diskspace
from daemon.core.ids import check_project_ids
from daemon.fleet import droplet
from daemon.ops import metrics
from daemon.ops import replication as syncops
from daemon.ops.alerts import Alerts
from daemon.project import isolation
from daemon.runtime import Runtime


@get("/status", guards=[signed], summary="Operator status (signed)")
async def status(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Queue, versions by status, sandbox layer, sync backlog, disk."""
    return await asyncio.to_thread(ops_jobs(request).status.report)


def health_detail(runtime: Runtime, alerts: Alerts) -> dict[str, Any]:
    """Liveness plus the alerts firing at the last evaluation (evaluated now when never evaluated yet)."""
    # The disk checks run on every read (a statvfs): a disk that filled since the last minute's evaluation shows now.
    firing = alerts.evaluate_disk() if alerts.last_evaluated else alerts.evaluate()
    out: dict[str, Any] = {"ok": not firing, "alerts": [a.to_json() for a in firing],
                           "evaluatedAt": alerts.last_evaluated, "disk": diskspace.report(runtime.data_dir,
                                                                   runtime.cfg.limits.disk_reserve_mb * 2**20)}
    # Said on every detailed health read: unconfined builds, or builds refused for want of the isolation layer.
    conf = isolation.confinement(runtime.cfg)
    out["isolation"] = conf.as_dict()
    if not conf.confined:
        out["warnings"] = [isolation.UNCONFINED_WARNING if conf.allowed else
                           f"builds are refused (sandbox_unavailable): {conf.why}; fix: {conf.fix}"]
    return out


@get("/healthz", guards=[ops_reader], opt={"detail_param": True},
     summary="Liveness; ?detail=1 (metrics bearer token or v2 signature) adds the alerts firing")
async def healthz(request: Request[Any, Any, Any], detail: FromQuery[bool] = False) -> Any:
    runtime = rt(request)
    if runtime.fleet is not None and runtime.fleet.draining:
        # a proxy's health check takes a draining droplet out of the API pool (packaging/haproxy.cfg)
        return Response({"ok": False, "draining": True}, status_code=503)
    if detail:
        return await asyncio.to_thread(health_detail, runtime, ops_jobs(request).alerts)
    return {"ok": True}


@get("/healthz/detail", guards=[ops_reader], summary="Liveness with the alerts firing now (metrics bearer token or "
     "v2 signature)")
async def healthz_detail(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(health_detail, rt(request), ops_jobs(request).alerts)


@get("/metrics", guards=[ops_reader], summary="Prometheus metrics (metrics bearer token or v2 signature)",
     media_type=metrics.CONTENT_TYPE)
async def prometheus(request: Request[Any, Any, Any]) -> Response[bytes]:
    jobs = ops_jobs(request)
    await asyncio.to_thread(jobs.gauges.refresh)
    return Response(jobs.metrics.render(), media_type=metrics.CONTENT_TYPE)


@post("/ops/sync", guards=[signed], status_code=200, summary="Drain the sync outbox now")
async def sync_flush(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(syncops.flush, rt(request).sync_loop)


@get("/ops/sync/verify", guards=[signed], summary="Compare local rows with Postgres and KV; with userId and "
     "projectId, one project across Postgres, S3 and KV, whichever droplet asks", responses=errors(409))
async def sync_verify(request: Request[Any, Any, Any], userId: FromQuery[str | None] = None,
                      projectId: FromQuery[str | None] = None) -> dict[str, Any]:
    if userId is not None or projectId is not None:
        check_project_ids(userId, projectId)
        assert userId is not None and projectId is not None
        return await asyncio.to_thread(droplet.verify_project, rt(request), userId, projectId)
    return await asyncio.to_thread(syncops.verify, rt(request).replica, rt(request).kv)


@post("/ops/cleanup", guards=[signed], status_code=200, summary="Run the retention cleanup now (signed)",
      responses=errors(409))
async def run_cleanup(request: Request[Any, Any, Any], dryRun: FromQuery[bool] = False) -> dict[str, Any]:
    """The nightly job on demand; `dryRun=1` reports what it would do and changes nothing. 409 when one runs."""
    report = await asyncio.to_thread(ops_jobs(request).cleanup.run, dry_run=dryRun)
    return report.to_json()


@get("/ops/fleet", guards=[signed], summary="The fleet as this droplet sees it (signed)")
async def fleet_view(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """This droplet's leases and counters, the droplets seen and every lease ([fleet] off: enabled false)."""
    return await asyncio.to_thread(droplet.status, rt(request))


@post("/ops/drain", guards=[signed], status_code=200, summary="Drain this droplet (signed)", responses=errors(409))
async def drain(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """New builds get 503 `draining`; the running build finishes; leases are released as projects go idle."""
    return await asyncio.to_thread(droplet.drain, rt(request))


HANDLERS: list[Any] = [status, healthz, healthz_detail, prometheus, sync_flush, sync_verify, run_cleanup, fleet_view,
                       drain]
