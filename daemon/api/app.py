"""The HTTP API (Litestar): thin handlers over the service functions, one JSON error shape, HMAC and rate guards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.config.response_cache import ResponseCacheConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from daemon.build import deploywatch, diffs, publish, screens, submit
from daemon.build import restore as restoring
from daemon.build import rollback as rolling_back
from daemon.build.queue import BuildQueue
from daemon.core import pointers, ratelimit, versions
from daemon.core import signing as security
from daemon.core.contract import ContractError
from daemon.core.errors import AppError, BadRequest, NotFound, PayloadTooLarge, RateLimited, Unauthorized, Unavailable
from daemon.core.ids import check_project_ids, valid_version_id
from daemon.deployers.webhook import WebhookPayloadError, parse_pages_event, verify_auth
from daemon.generators import GenerationError, GenerationRequest
from daemon.ops import metrics
from daemon.ops import replication as syncops
from daemon.ops import status as status_view
from daemon.runtime import Runtime

log = logging.getLogger("previewd.api")

IdStr = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="[A-Za-z0-9_-]{1,64}")]
UlidStr = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="a version id (ULID)")]
Framework = Annotated[str, msgspec.Meta(description="react | nextjs | vue | svelte")]


class NewProjectBody(msgspec.Struct):
    userId: IdStr
    projectId: IdStr
    prompt: str
    framework: Framework | None = None


class RebuildBody(msgspec.Struct):
    userId: IdStr
    projectId: IdStr
    prompt: str
    baseVersionId: UlidStr | None = None


class GenerateBody(msgspec.Struct):
    prompt: str
    framework: Framework | None = None


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every 4xx/5xx body; ``error`` may carry more keys (``field``, ``versionId``, ``retry_after``, ...)."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "Bad input (a field error names the field)",
    401: "Missing or wrong signature, or a stale timestamp",
    404: "Unknown project or version",
    409: "Conflicts with the current state (a build in flight, a failed target, nothing to undo, ...)",
    413: "Body larger than max_body_bytes",
    429: "Past a rate cap (Retry-After says when to retry)",
    503: "A dependency (generator, store) failed",
}


class BuildAccepted(msgspec.Struct):
    """The 202 answer: the build is queued or running; poll statusUrl or follow logUrl."""

    success: bool
    versionId: str
    status: str
    statusUrl: str
    logUrl: str


ACCEPTED = {202: ResponseSpec(BuildAccepted, description="Build queued or still running (wait=false or wait timed out)",
                              generate_examples=False)}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response specs for error statuses, all in the one error shape."""
    return {s: ResponseSpec(ErrorBody, description=_ERROR_DESCRIPTIONS[s], generate_examples=False)
            for s in statuses}


def _document_errors(handler: Any) -> None:
    """Declare the error answers every handler can give: 400; 404 with a path id; 401/413/429 when signed."""
    statuses = [400]
    if any("{" in path for path in handler.paths):
        statuses.append(404)
    if signed in (handler.guards or []):
        statuses += [401, 413, 429]
    handler.responses = {**errors(*statuses), **(handler.responses or {})}


def _rt(conn: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    rt: Runtime = conn.app.state.runtime
    return rt


async def signed(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for mutating routes: per-IP cap first (bots pay before they are checked), then the HMAC."""
    rt = _rt(connection)
    ip = connection.client.host if connection.client else "unknown"
    await asyncio.to_thread(ratelimit.hit, f"ip:{ip}", rt.cfg.rate_limits.per_ip_per_hour, "requests per IP")
    request: Request[Any, Any, Any] = connection  # type: ignore[assignment]
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > rt.cfg.server.max_body_bytes:
        raise PayloadTooLarge(f"body larger than {rt.cfg.server.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > rt.cfg.server.max_body_bytes:
        raise PayloadTooLarge(f"body larger than {rt.cfg.server.max_body_bytes} bytes")
    security.verify(rt.cfg.secrets.hmac_secret, body, request.headers.get("x-sheen-signature"),
                    request.headers.get("x-sheen-timestamp"))


def _check_prompt(rt: Runtime, prompt: str) -> None:
    if not prompt.strip():
        raise BadRequest("prompt must not be empty", code="invalid_field", field="prompt")
    if len(prompt) > rt.cfg.limits.max_prompt_chars:
        raise BadRequest(f"prompt is longer than {rt.cfg.limits.max_prompt_chars} characters", code="invalid_field",
                         field="prompt")
    if "\x00" in prompt:
        raise BadRequest("prompt must not contain NUL characters", code="invalid_field", field="prompt")


async def _answer_build(request: Request[Any, Any, Any], version_id: str, wait: bool) -> Response[Any]:
    rt = _rt(request)
    if wait and rt.cfg.server.wait_timeout_s > 0:
        await rt.waiters.wait(version_id, rt.cfg.server.wait_timeout_s,
                              lambda: versions.get(version_id).status in submit.TERMINAL)
    v = await asyncio.to_thread(versions.get, version_id)
    status, body = submit.build_answer(rt, v)
    return Response(body, status_code=status)


@post("/build-preview-for-new-project", guards=[signed], status_code=200, summary="Build a new project",
      responses={**ACCEPTED, **errors(409)})
async def build_new(request: Request[Any, Any, Any], data: JSONBody[NewProjectBody],
                    wait: FromQuery[bool] = True) -> Response[Any]:
    """Scaffold, build and deploy a new project; waits for the build unless wait=false."""
    rt = _rt(request)
    req = submit.parse_build_request(msgspec.to_builtins(data), rebuild=False,
                                      max_prompt=rt.cfg.limits.max_prompt_chars)
    v = await asyncio.to_thread(submit.submit_new, rt, request.app.state.queue, req)
    return await _answer_build(request, v.version_id, wait)


@post("/rebuild-preview", guards=[signed], status_code=200, summary="Rebuild an existing project",
      responses={**ACCEPTED, **errors(404, 409)})
async def rebuild(request: Request[Any, Any, Any], data: JSONBody[RebuildBody],
                  wait: FromQuery[bool] = True) -> Response[Any]:
    """Refine a project from its base version (default: the latest deployed)."""
    rt = _rt(request)
    req = submit.parse_build_request(msgspec.to_builtins(data), rebuild=True,
                                      max_prompt=rt.cfg.limits.max_prompt_chars)
    v = await asyncio.to_thread(submit.submit_rebuild, rt, request.app.state.queue, req)
    return await _answer_build(request, v.version_id, wait)


@post("/generate", guards=[signed], status_code=200, summary="Generate a project (the contract JSON)",
      responses=errors(503))
async def generate(request: Request[Any, Any, Any], data: JSONBody[GenerateBody]) -> dict[str, Any]:
    """Run the generator only and return the seed's JSON contract."""
    rt = _rt(request)
    _check_prompt(rt, data.prompt)
    if data.framework is not None and data.framework not in submit.FRAMEWORKS:
        raise BadRequest(f"framework must be one of {', '.join(submit.FRAMEWORKS)}", code="invalid_field",
                         field="framework")
    try:
        result = await asyncio.to_thread(rt.generator.generate,
                                         GenerationRequest(prompt=data.prompt, framework=data.framework),
                                         lambda _line: None)
    except GenerationError as exc:
        raise Unavailable(exc.message, code="generation_failed") from exc
    except ContractError as exc:
        raise Unavailable(str(exc), code="invalid_output") from exc
    return result.contract.to_json()


@get("/projects/{user_id:str}/{project_id:str}/preview", summary="Current preview pointer")
async def preview_pointer(request: Request[Any, Any, Any], user_id: FromPath[str],
                          project_id: FromPath[str]) -> dict[str, Any]:
    """KV first, the database second (the seed's retrieve flow)."""
    rt = _rt(request)
    check_project_ids(user_id, project_id)
    ptr = pointers.read_nowait(rt.kv, user_id, project_id) \
        or await asyncio.to_thread(pointers.read, rt.kv, user_id, project_id)
    if ptr is None:
        raise NotFound(f"project {user_id}/{project_id} has no preview", code="project_not_found")
    return ptr


@get("/versions", summary="Version history, newest first")
async def list_versions(request: Request[Any, Any, Any], userId: FromQuery[str], projectId: FromQuery[str],
                        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """History panel; a project this droplet does not hold is answered from the Postgres replica."""
    items = await asyncio.to_thread(versions.history_json, userId, projectId, limit)
    if not items:
        items = (await asyncio.to_thread(syncops.remote_history, _rt(request), userId, projectId))[:limit]
    return {"versions": items}


@get("/versions/{version_id:str}", summary="One version")
async def get_version(request: Request[Any, Any, Any], version_id: FromPath[str]) -> dict[str, Any]:
    try:
        v = await asyncio.to_thread(versions.get, version_id)
    except AppError as exc:
        remote = None
        if exc.status == 404 and valid_version_id(version_id):
            remote = await asyncio.to_thread(syncops.remote_version, _rt(request), version_id)
        if remote is None:
            raise
        return remote
    return versions.version_json(v)


@get("/versions/{version_id:str}/screenshot", summary="A deployed version's screenshot (PNG)",
     media_type="image/png", responses=errors(409))
async def get_screenshot(request: Request[Any, Any, Any], version_id: FromPath[str],
                         size: FromQuery[str] = "desktop") -> Response[bytes]:
    png = await asyncio.to_thread(screens.screenshot, _rt(request), version_id, size)
    return Response(png, media_type="image/png")


@post("/ops/sync", guards=[signed], status_code=200, summary="Drain the sync outbox now")
async def sync_flush(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(syncops.flush, _rt(request))


@get("/ops/sync/verify", guards=[signed], summary="Compare local rows with Postgres and KV")
async def sync_verify(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(syncops.verify, _rt(request))


@get("/versions/{version_id:str}/log", summary="A version's build log (text)", media_type="text/plain")
async def get_log(request: Request[Any, Any, Any], version_id: FromPath[str]) -> Response[bytes]:
    rt = _rt(request)
    await asyncio.to_thread(versions.get, version_id)
    path = rt.layout.log_path(version_id)
    data = await asyncio.to_thread(lambda: path.read_bytes() if path.exists() else b"")
    return Response(data, media_type="text/plain; charset=utf-8")


@get("/status", guards=[signed], summary="Operator status (signed)")
async def status(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Queue, versions by status, sandbox layer, sync backlog, disk."""
    rt = _rt(request)
    return await asyncio.to_thread(status_view.status_report, rt, request.app.state.queue)


class ProjectRef(msgspec.Struct):
    userId: IdStr
    projectId: IdStr


@get("/versions/{version_id:str}/diff/{other_id:str}", summary="Diff two versions of one project",
     responses=errors(409))
async def diff_versions(request: Request[Any, Any, Any], version_id: FromPath[str], other_id: FromPath[str],
                        mode: FromQuery[str] = "patch") -> Response[Any]:
    """patch (text/x-diff), stat (JSON per-file counts), files (changed paths), visual (PNG) or visual-stats."""
    rt = _rt(request)
    if mode in ("visual", "visual-stats"):
        out = await asyncio.to_thread(screens.visual_diff, rt, version_id, other_id, stats_only=mode == "visual-stats")
        return Response(out) if mode == "visual-stats" else Response(out, media_type="image/png")
    result = await asyncio.to_thread(diffs.diff, rt, version_id, other_id, mode)
    if mode == "patch":
        return Response(result.encode("utf-8", "replace") if isinstance(result, str) else result,
                        media_type="text/x-diff; charset=utf-8")
    return Response({"files": result} if isinstance(result, list) else result)


@post("/rollback/{version_id:str}", guards=[signed], status_code=200, summary="Roll back to a version",
      responses={**ACCEPTED, **errors(409)})
async def rollback(request: Request[Any, Any, Any], version_id: FromPath[str], data: JSONBody[ProjectRef],
                   wait: FromQuery[bool] = True) -> Response[Any]:
    """A new version equal to the target: artifact redeployed when it exists, else rebuilt from its sources."""
    rt = _rt(request)
    v = await asyncio.to_thread(rolling_back.rollback, rt, request.app.state.queue, data.userId, data.projectId,
                                version_id)
    return await _answer_build(request, v.version_id, wait)


@post("/projects/{user_id:str}/{project_id:str}/undo", guards=[signed], status_code=200, summary="Undo",
      responses=errors(409))
async def undo(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    """Make the previously live version live again, without rebuilding."""
    return await _walk(request, user_id, project_id, "undo")


@post("/projects/{user_id:str}/{project_id:str}/redo", guards=[signed], status_code=200, summary="Redo",
      responses=errors(409))
async def redo(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    """Step forward again after an undo."""
    return await _walk(request, user_id, project_id, "redo")


async def _walk(request: Request[Any, Any, Any], user_id: str, project_id: str, direction: str) -> dict[str, Any]:
    check_project_ids(user_id, project_id)
    v = await asyncio.to_thread(publish.walk, _rt(request), user_id, project_id, direction)
    return {"success": True, "versionId": v.version_id, "previewUrl": v.preview_url,
            **versions.navigation(user_id, project_id)}


@post("/projects/{user_id:str}/{project_id:str}/restore", guards=[signed], status_code=200,
      summary="Restore a project's history from the packs in object storage", responses=errors(409, 503))
async def restore(request: Request[Any, Any, Any], user_id: FromPath[str], project_id: FromPath[str]) -> dict[str, Any]:
    return await asyncio.to_thread(restoring.restore, _rt(request), user_id, project_id)


@post("/cf-pages-callback", status_code=200, summary="Cloudflare Pages deployment notification",
      responses=errors(401))
async def cf_pages_callback(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Checks cf-webhook-auth in constant time, then settles the deployment once (replays change nothing)."""
    rt = _rt(request)
    if not verify_auth(request.headers.get("cf-webhook-auth"), rt.cfg.secrets.cf_webhook_secret):
        rt.count("webhook_refused")
        metrics.webhook_refused(rt, "auth")
        log.warning("pages webhook refused: bad or missing cf-webhook-auth from %s",
                    request.client.host if request.client else "?")
        raise Unauthorized("missing or wrong cf-webhook-auth", code="webhook_auth")
    body = await request.body()
    try:
        event = parse_pages_event(body)
    except WebhookPayloadError as exc:
        rt.count("webhook_malformed")
        metrics.webhook_refused(rt, "malformed")
        raise BadRequest(str(exc), code="bad_webhook_payload") from exc
    rt.count("webhook_received")
    metrics.webhook_received(rt, event.state if event is not None else "ignored")
    if event is None:
        return {"ok": True, "matched": False}
    result = await asyncio.to_thread(deploywatch.handle_event, rt, event)
    if result.get("matched") and result.get("changed") is False:
        metrics.webhook_retried(rt, event.state)
    return result


@get("/healthz", summary="Liveness; ?detail=1 adds alerts, queue and sync state")
async def healthz(request: Request[Any, Any, Any], detail: FromQuery[bool] = False) -> dict[str, Any]:
    if detail:
        from daemon.api import ops as ops_api  # ops imports this module's guard

        result: dict[str, Any] = await asyncio.to_thread(ops_api.health_detail, _rt(request))
        return result
    return {"ok": True}


def _field_from(message: str) -> str | None:
    """The body field a msgspec message names ("... at `$.userId`", "missing required field `prompt`")."""
    m = re.search(r"at `\$\.([A-Za-z_]\w*)", message) or re.search(r"field `([A-Za-z_]\w*)`", message)
    return m.group(1) if m else None


def _error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, RateLimited):
        with contextlib.suppress(Exception):
            metrics.rate_limited(_rt(request), exc.message.removeprefix("rate cap reached: ").split(" (")[0])
    if isinstance(exc, AppError):
        return Response(exc.body(), status_code=exc.status, headers=exc.headers)
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        first = extra[0] if extra and isinstance(extra[0], dict) else {}
        message = str(first.get("message") or exc.detail)
        field = _field_from(message) or (first.get("key") if first.get("key") not in (None, "data") else None)
        body: dict[str, Any] = {"code": "invalid_field" if field else "invalid_body",
                                "message": f"{field}: {message}" if field else str(message)}
        if field:
            body["field"] = field
        return Response({"error": body}, status_code=400)
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code,
                                                                                          "http_error")
        return Response({"error": {"code": code, "message": exc.detail}}, status_code=exc.status_code,
                        headers=exc.headers or None)
    log.exception("unhandled error", exc_info=exc)
    return Response({"error": {"code": "internal_error", "message": "internal error; see the daemon log"}},
                    status_code=500)


def create_app(rt: Runtime, queue: BuildQueue, extra_handlers: list[Any] | None = None) -> Litestar:
    """The Litestar application around a built runtime and queue."""
    handlers = [build_new, rebuild, generate, preview_pointer, list_versions, get_version, get_log, status, healthz,
                diff_versions, rollback, undo, redo, restore, cf_pages_callback, sync_flush, sync_verify,
                get_screenshot, *(extra_handlers or [])]
    for handler in handlers:
        _document_errors(handler)
    app = Litestar(
        route_handlers=handlers,
        exception_handlers={Exception: _error_response},
        openapi_config=OpenAPIConfig(title="previewd", version="0.1.0", path="/schema"),
        request_max_body_size=rt.cfg.server.max_body_bytes,
        response_cache_config=ResponseCacheConfig(),
        logging_config=None,  # logging is configured once by logging_setup, not re-done by the framework
        debug=False,
    )
    app.state.runtime = rt
    app.state.queue = queue
    return app
