"""Plan and usage routes: assign a plan to a user or an org, one user's usage against its plan, the billing export."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get, put
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIResponse, Operation
from litestar.params import FromPath, FromQuery, JSONBody

from daemon.api.docs import errors
from daemon.api.guards import signed
from daemon.core.errors import BadRequest
from daemon.core.ids import check_org_id, check_project_ids
from daemon.intake.requests import PlanBody
from daemon.ops import usage
from daemon.services.plans import Plans

CSV = "text/csv"  # Litestar adds the charset to text/* itself
JSONL = "application/jsonl"


@dataclass
class _ExportOperation(Operation):
    """The export's schema names both of its answers' types (a route declares only one media type)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content:
            media = next(iter(ok.content.values()))
            ok.content = {CSV: media, JSONL: media}


@put("/users/{user_id:str}/plan", guards=[signed], status_code=200, summary="Put a user on a plan (signed)",
     responses=errors(400))
async def user_plan(plans: NamedDependency[Plans], user_id: FromPath[str], data: JSONBody[PlanBody]) -> dict[str, Any]:
    """The plan applies from the user's next request; stored in state.db and replicated to Postgres."""
    check_project_ids(user_id, "x")
    rec = await asyncio.to_thread(plans.assign, "user", user_id, data.plan)
    return {"userId": user_id, "plan": rec["plan"], "updatedAt": rec["updated_at"]}


@put("/orgs/{org_id:str}/plan", guards=[signed], status_code=200, summary="Put an org on a plan (signed)",
     responses=errors(400))
async def org_plan(plans: NamedDependency[Plans], org_id: FromPath[str], data: JSONBody[PlanBody]) -> dict[str, Any]:
    """Requests that carry this `orgId` are held to the org's plan (each user's own usage)."""
    check_org_id(org_id)
    rec = await asyncio.to_thread(plans.assign, "org", org_id, data.plan)
    return {"orgId": org_id, "plan": rec["plan"], "updatedAt": rec["updated_at"]}


# Reads are not counted against the per-IP cap (like the other reads): a billing job may poll every user.
READ = {"uncapped": True}


@get("/usage", guards=[signed], opt=READ, summary="A user's usage this month against its plan (signed)",
     responses=errors(400))
async def user_usage(plans: NamedDependency[Plans], userId: FromQuery[str], month: FromQuery[str | None] = None,
                     orgId: FromQuery[str | None] = None) -> dict[str, Any]:
    """`month` is YYYY-MM (UTC; default this month); `orgId` shows the org's plan when it has one."""
    return await asyncio.to_thread(plans.report, userId, month, orgId)


def _format(request: Request[Any, Any, Any], fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise BadRequest("format must be csv or jsonl", code="invalid_field", field="format")
        return fmt
    accept = request.headers.get("accept", "")
    return "jsonl" if any(t in accept for t in ("jsonl", "ndjson", "application/json")) else "csv"


@get("/usage/export", guards=[signed], opt=READ, media_type=CSV, operation_class=_ExportOperation,
     summary="Billing export: one row per user for a month, CSV or JSON lines (signed)", responses=errors(400))
async def export(request: Request[Any, Any, Any], plans: NamedDependency[Plans], month: FromQuery[str | None] = None,
                 format: FromQuery[str | None] = None) -> Response[str]:
    """`format=csv|jsonl`, else the Accept header (JSON lines for application/jsonl, x-ndjson or json)."""
    fmt = _format(request, format)
    rows = await asyncio.to_thread(plans.export_rows, month)
    if fmt == "csv":
        return Response(usage.to_csv(rows), media_type=CSV)
    return Response(usage.to_jsonl(rows), media_type=JSONL)


HANDLERS: list[Any] = [user_plan, org_plan, user_usage, export]
