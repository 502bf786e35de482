"""OpenAPI documentation shared by the route modules: the one error shape, its statuses, the 202 answer."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.openapi import ResponseSpec

from daemon.api.guards import signed

IdStr = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="[A-Za-z0-9_-]{1,64}")]
UlidStr = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="a version id (ULID)")]
Framework = Annotated[str, msgspec.Meta(description="react | nextjs | vue | svelte")]


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


def document_errors(handler: Any) -> None:
    """Declare the error answers every handler can give: 400; 404 with a path id; 401/413/429 when signed."""
    statuses = [400]
    if any("{" in path for path in handler.paths):
        statuses.append(404)
    if signed in (handler.guards or []):
        statuses += [401, 413, 429]
    handler.responses = {**errors(*statuses), **(handler.responses or {})}
