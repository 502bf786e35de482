"""Sign-in and sign-out, and the operator's actions (rollback, undo, redo, pin, unpin, rebuild from a version):
each confirmed on its own page, each calling the service the API's route calls (no second path)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import NotFound
from daemon.core.ids import check_project_ids
from daemon.services.access import Access, client_ip
from daemon.services.builds import Builds
from daemon.services.publisher import Publisher
from daemon.ui import queries
from daemon.ui.access import check_password, check_token, end_session, open_session, session_ok, signed_in

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
GUARDS = [signed_in]
VERSION_ACTIONS = {
    "rollback": ("Roll back to this version", "A new version equal to this one goes live (its artifact is "
                 "redeployed, or its sources rebuilt when the artifact is gone)."),
    "pin": ("Pin this version", "Cleanup will never delete it, its artifact or its preview."),
    "unpin": ("Unpin this version", "Cleanup may delete it again once it is old enough."),
    "rebuild": ("Rebuild from this version", "A new build starts from this version's sources with your prompt."),
}
LIVE_CHANGES = ("rollback", "rebuild")  # version actions whose confirmation shows the live version beside
TARGET_LABELS = {"rollback": "Goes live (as a new version)", "rebuild": "Built from"}
PROJECT_ACTIONS = {
    "undo": ("Undo", "The version that was live before the current one goes live again, without a rebuild."),
    "redo": ("Redo", "The version undone last goes live again."),
}


def safe_next(value: str | None) -> str:
    """Only a path inside the dashboard: never another host, never a scheme-relative `//host` URL."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value \
            and "//" not in value:
        return value
    return "/ui/"


@get("/sign-in", name="ui-sign-in")
async def sign_in_page(request: Request[Any, Any, Any], access: NamedDependency[Access],
                       next: FromQuery[str] = "/ui/") -> Template | Redirect:
    if await session_ok(request):
        return Redirect(safe_next(next))
    return Template("sign_in.html", context={"page": "sign-in", "next": safe_next(next), "error": None,
                                             "has_password": bool(access.cfg.ui.password_hash)})


@post("/sign-in", name="ui-sign-in-post", status_code=303)
async def sign_in(request: Request[Any, Any, Any], access: NamedDependency[Access], data: Form) -> Template | Redirect:
    """A password checked against `[ui] password_hash`, or a `daemonctl ui-token`. Failures are counted per IP
    ([rate_limits] failed_auth_per_ip_per_hour, the API's cap, in a window of the dashboard's own) and in the
    API's auth-failure metric."""
    cfg = access.cfg
    password, token = data.get("password", ""), data.get("token", "").strip()
    target = safe_next(data.get("next"))
    ip = client_ip(request)
    cap = cfg.rate_limits.failed_auth_per_ip_per_hour
    window = access.ui_sign_in_failures
    # Past the cap a password is not even checked (guessing stops); a token (an HMAC, not guessable) still is,
    # so an operator on a shared address can always get in with `daemonctl ui-token`.
    over = window.count(ip) >= cap
    ok = False
    if token:
        ok = check_token(cfg.secrets.hmac_secret, token)
    elif password and cfg.ui.password_hash and not over:
        ok = await asyncio.to_thread(check_password, cfg.ui.password_hash, password)
    if ok:
        session = await asyncio.to_thread(open_session, cfg.ui.session_hours * 3600, cfg.ui.password_hash)
        request.set_session(session)
        return Redirect(target, status_code=303)
    if not over:
        access.telemetry.auth_failed("ui_sign_in_failed", ip)
        over = window.add(ip, cap) > cap
    error = ("too many failed sign-ins from your address; wait an hour, or use a token from `daemonctl ui-token`"
             if over else "that password or token is not right" if (password or token)
             else "enter a password or a token")
    return Template("sign_in.html", status_code=429 if over else 401,
                    context={"page": "sign-in", "next": target, "error": error,
                             "has_password": bool(cfg.ui.password_hash)})


@post("/sign-out", name="ui-sign-out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Redirect:
    """Ends the session here (its row), not only in this browser (the cookie)."""
    await asyncio.to_thread(end_session, request.scope.get("session"))  # type: ignore[arg-type]
    request.clear_session()
    return Redirect("/ui/sign-in", status_code=303)


def _live(user_id: str, project_id: str) -> ProjectVersion | None:
    return queries.one(versions.navigation(user_id, project_id)["liveVersionId"])


@get("/versions/{version_id:str}/confirm/{action:str}", guards=GUARDS, name="ui-confirm-version")
async def confirm_version(version_id: FromPath[str], action: FromPath[str]) -> Template:
    """The confirmation page of a version action: the version it acts on and, when the live version changes, the
    one live now beside it."""
    if action not in VERSION_ACTIONS:
        raise NotFound(f"no action {action!r}", code="not_found")

    def load() -> tuple[ProjectVersion, ProjectVersion | None]:
        v = versions.get(version_id)
        return v, _live(v.user_id, v.project_id)

    v, live = await asyncio.to_thread(load)
    title, what = VERSION_ACTIONS[action]
    return Template("confirm.html", context={"page": "projects", "title": title, "what": what, "v": v,
                                             "target": v, "current": live if action in LIVE_CHANGES else None,
                                             "target_label": TARGET_LABELS.get(action, "This version"),
                                             "action": f"/ui/versions/{version_id}/{action}",
                                             "back": f"/ui/projects/{v.user_id}/{v.project_id}",
                                             "prompt": action == "rebuild"})


@get("/projects/{user_id:str}/{project_id:str}/confirm/{action:str}", guards=GUARDS, name="ui-confirm-project")
async def confirm_project(user_id: FromPath[str], project_id: FromPath[str], action: FromPath[str]) -> Template:
    """Undo or redo's confirmation: the version live now and the one that goes live instead."""
    check_project_ids(user_id, project_id)
    if action not in PROJECT_ACTIONS:
        raise NotFound(f"no action {action!r}", code="not_found")

    def load() -> tuple[ProjectVersion | None, ProjectVersion | None]:
        nav = versions.navigation(user_id, project_id)
        reach = nav.get(action) or []
        return queries.one(nav["liveVersionId"]), queries.one(reach[0] if reach else None)

    live, target = await asyncio.to_thread(load)
    title, what = PROJECT_ACTIONS[action]
    back = f"/ui/projects/{user_id}/{project_id}"
    return Template("confirm.html", context={"page": "projects", "title": f"{title} in {user_id}/{project_id}",
                                             "what": what, "v": None, "target": target, "current": live,
                                             "target_label": "Goes live", "action": f"{back}/{action}",
                                             "back": back, "prompt": False})


@post("/versions/{version_id:str}/rollback", guards=GUARDS, status_code=303, name="ui-rollback")
async def rollback(publisher: NamedDependency[Publisher], version_id: FromPath[str]) -> Redirect:
    """The API's rollback (`POST /rollback/{id}`): same service, same rate cap, same new version."""
    v = await asyncio.to_thread(publisher.rollback_to, version_id)
    return Redirect(f"/ui/versions/{v.version_id}?done=rollback", status_code=303)


@post("/versions/{version_id:str}/pin", guards=GUARDS, status_code=303, name="ui-pin")
async def pin(publisher: NamedDependency[Publisher], version_id: FromPath[str]) -> Redirect:
    v = await asyncio.to_thread(publisher.set_pinned, version_id, True)
    return Redirect(f"/ui/projects/{v.user_id}/{v.project_id}?done=pin&v={v.version_id}", status_code=303)


@post("/versions/{version_id:str}/unpin", guards=GUARDS, status_code=303, name="ui-unpin")
async def unpin(publisher: NamedDependency[Publisher], version_id: FromPath[str]) -> Redirect:
    v = await asyncio.to_thread(publisher.set_pinned, version_id, False)
    return Redirect(f"/ui/projects/{v.user_id}/{v.project_id}?done=unpin&v={v.version_id}", status_code=303)


@post("/versions/{version_id:str}/rebuild", guards=GUARDS, status_code=303, name="ui-rebuild")
async def rebuild(builds: NamedDependency[Builds], version_id: FromPath[str], data: Form) -> Redirect:
    """The API's `/rebuild-preview` with this version as the base: same parsing, caps and queue."""
    v = await asyncio.to_thread(builds.rebuild_from, version_id, data.get("prompt", ""))
    return Redirect(f"/ui/versions/{v.version_id}?done=rebuild", status_code=303)


@post("/projects/{user_id:str}/{project_id:str}/{direction:str}", guards=GUARDS, status_code=303, name="ui-walk")
async def walk(publisher: NamedDependency[Publisher], user_id: FromPath[str], project_id: FromPath[str],
               direction: FromPath[str]) -> Redirect:
    """Undo or redo through `Publisher.walk`, as `POST /projects/{u}/{p}/undo|redo` does."""
    check_project_ids(user_id, project_id)
    if direction not in PROJECT_ACTIONS:
        raise NotFound(f"no action {direction!r}", code="not_found")
    await asyncio.to_thread(publisher.walk, user_id, project_id, direction)
    return Redirect(f"/ui/projects/{user_id}/{project_id}?done={direction}", status_code=303)


HANDLERS: list[Any] = [sign_in_page, sign_in, sign_out, confirm_version, confirm_project, rollback, pin, unpin,
                       rebuild, walk]
