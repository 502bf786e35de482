"""Token routes: a signed caller (the app server) mints a short-lived read token for one project."""

from __future__ import annotations

from typing import Any

from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from daemon.api.guards import signed
from daemon.intake.requests import TokenBody
from daemon.services.access import Access


@post("/tokens", guards=[signed], opt={"uncapped": True}, status_code=200,
      summary="Mint a read token for one project (signed)")
async def mint(access: NamedDependency[Access], data: JSONBody[TokenBody]) -> dict[str, Any]:
    """A token `v1.<userId>.<projectId>.<exp>.<hexmac>` that reads the project's versions, logs, diffs, screenshots
    and log stream until `expiresAt` (unix seconds); pass it as `?token=` or `Authorization: Bearer`. Minting
    needs no call: any holder of the shared secret can compute one (see the README)."""
    return access.mint_read_token(data.userId, data.projectId, data.ttlSeconds)


HANDLERS: list[Any] = [mint]
