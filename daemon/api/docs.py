"""OpenAPI documentation shared by the route modules: the one error shape, its statuses, the 202 answer."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from daemon.api.guards import ops_reader, reader, signed

# Documents the `?token=` a per-user read accepts; the `reader` guard reads and checks it, the handler ignores it.
READ_TOKEN = Annotated[str | None, QueryParameter(
    description="A read token v1.<userId>.<projectId>.<exp>.<hexmac> (instead of a v2 signature; also accepted "
                "as Authorization: Bearer)", required=False)]


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every 4xx/5xx body; ``error`` may carry more keys (``field``, ``versionId``, ``retry_after``, ...)."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "Bad input (a field error names the field)",
    401: "Missing or wrong signature or token, a stale timestamp, or a signature used before",
    403: "A read token for another project",
    404: "Unknown project or version",
    409: "Conflicts with the current state (a build in flight, a failed target, nothing to undo, ...)",
    413: "Body larger than max_body_bytes, or an answer over its cap (a diff: ask mode=stat)",
    429: "Past a rate cap, or too many failed authentications (Retry-After says when to retry)",
    503: "A dependency (generator, store) failed, too many log streams are open, or the data dir's disk is full "
         "(disk_full, naming the filesystem) (Retry-After)",
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
    """Declare the error answers every handler can give: 400; 404 with a path id; those of its guard."""
    statuses = [400]
    if any("{" in path for path in handler.paths):
        statuses.append(404)
    guards = handler.guards or []
    if signed in guards:
        statuses += [401, 413, 429, 503]  # 503 disk_full: the nonce (and any write after it) needs space
    if reader in guards:
        statuses += [401, 403, 413, 429]
    if ops_reader in guards:
        statuses += [401, 413, 429]
    handler.responses = {**errors(*sorted(set(statuses))), **(handler.responses or {})}
