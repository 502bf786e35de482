"""Operations routes: status, liveness and health detail, Prometheus metrics, sync flush/verify, cleanup."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery

from daemon.api.docs import errors
from daemon.api.guards import ops_reader, signed
from daemon.core.ids import check_project_ids
from daemon.ops import metrics
from daemon.services.operations import Operations


@get("/status", guards=[signed], summary="Operator status (signed)")
async def status(operations: NamedDependency[Operations]) -> dict[str, Any]:
    """Queue, versions by status, sandbox layer, sync backlog, disk."""
    return await asyncio.to_thread(operations.status)


@get("/healthz", guards=[ops_reader], opt={"detail_param": True},
     summary="Liveness; ?detail=1 (metrics bearer token or v2 signature) adds the alerts firing")
async def healthz(operations: NamedDependency[Operations], detail: FromQuery[bool] = False) -> Any:
    if operations.draining:
        # a proxy's health check takes a draining droplet out of the API pool (packaging/haproxy.cfg)
        return Response({"ok": False, "draining": True}, status_code=503)
    if operations.warming:
        # not routed to (nor admitting builds) until its store holds the fleet's hot packages
        return Response({"ok": False, "warming": True, "warmStart": operations.warm_status()}, status_code=503)
    if detail:
        return await asyncio.to_thread(operations.health_detail)
    return {"ok": True}


@get("/healthz/detail", guards=[ops_reader], summary="Liveness with the alerts firing now (metrics bearer token or "
     "v2 signature)")
async def healthz_detail(operations: NamedDependency[Operations]) -> dict[str, Any]:
    return await asyncio.to_thread(operations.health_detail)


@get("/metrics", guards=[ops_reader], summary="Prometheus metrics (metrics bearer token or v2 signature)",
     media_type=metrics.CONTENT_TYPE)
async def prometheus(operations: NamedDependency[Operations]) -> Response[bytes]:
    return Response(await asyncio.to_thread(operations.metrics_text), media_type=metrics.CONTENT_TYPE)


@post("/ops/sync", guards=[signed], status_code=200, summary="Drain the sync outbox now")
async def sync_flush(operations: NamedDependency[Operations]) -> dict[str, Any]:
    return await asyncio.to_thread(operations.sync_flush)


@get("/ops/sync/verify", guards=[signed], summary="Compare local rows with Postgres and KV; with userId and "
     "projectId, one project across Postgres, S3 and KV, whichever droplet asks", responses=errors(409))
async def sync_verify(operations: NamedDependency[Operations], userId: FromQuery[str | None] = None,
                      projectId: FromQuery[str | None] = None) -> dict[str, Any]:
    if userId is not None or projectId is not None:
        check_project_ids(userId, projectId)
        assert userId is not None and projectId is not None
        return await asyncio.to_thread(operations.verify_project, userId, projectId)
    return await asyncio.to_thread(operations.sync_verify)


@post("/ops/cleanup", guards=[signed], status_code=200, summary="Run the retention cleanup now (signed)",
      responses=errors(409))
async def run_cleanup(operations: NamedDependency[Operations], dryRun: FromQuery[bool] = False) -> dict[str, Any]:
    """The nightly job on demand; `dryRun=1` reports what it would do and changes nothing. 409 when one runs."""
    return await asyncio.to_thread(operations.cleanup, dry_run=dryRun)


@get("/ops/fleet", guards=[signed], summary="The fleet as this droplet sees it (signed)")
async def fleet_view(operations: NamedDependency[Operations]) -> dict[str, Any]:
    """This droplet's leases and counters, the droplets seen and every lease ([fleet] off: enabled false)."""
    return await asyncio.to_thread(operations.fleet_status)


@post("/ops/drain", guards=[signed], status_code=200, summary="Drain this droplet (signed)", responses=errors(409))
async def drain(operations: NamedDependency[Operations]) -> dict[str, Any]:
    """New builds get 503 `draining`; the running build finishes; leases are released as projects go idle."""
    return await asyncio.to_thread(operations.drain)


HANDLERS: list[Any] = [status, healthz, healthz_detail, prometheus, sync_flush, sync_verify, run_cleanup, fleet_view,
                       drain]
