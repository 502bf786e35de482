"""The dashboard's "Try to fix": a failed version's repair request as the generator will get it, and the action
that runs one attempt through the same service as `POST /versions/{id}/repair` (README "Repair")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from daemon.core import versions
from daemon.core.errors import Conflict
from daemon.generators.repairtext import repair_text
from daemon.services.builds import Builds
from daemon.ui.access import signed_in

GUARDS = [signed_in]


@get("/versions/{version_id:str}/repair", guards=GUARDS, name="ui-repair-confirm")
async def repair_confirm(version_id: FromPath[str]) -> Template:
    """What "Try to fix" will send: the request's text, its errors and log lines; the button that sends it."""
    v = await asyncio.to_thread(versions.get, version_id)
    if not v.repair_request:
        raise Conflict(f"version {version_id} has no repair request", code="not_repairable")
    req = json.loads(v.repair_request)
    return Template("repair.html", context={"page": "projects", "v": v, "text": repair_text(req),
                                            "back": f"/ui/versions/{version_id}"})


@post("/versions/{version_id:str}/repair", guards=GUARDS, status_code=303, name="ui-repair")
async def repair(builds: NamedDependency[Builds], version_id: FromPath[str]) -> Redirect:
    """One repair attempt (the API's service: the same budget, caps and queue); the attempt's page follows it."""
    v = await asyncio.to_thread(versions.get, version_id)
    attempt = await asyncio.to_thread(builds.repair, version_id, v.user_id, v.project_id)
    return Redirect(f"/ui/versions/{attempt.version_id}", status_code=303)


HANDLERS: list[Any] = [repair_confirm, repair]
