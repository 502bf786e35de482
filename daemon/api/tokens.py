"""Token routes: a signed caller (the app server) mints a short-lived read token for one project."""

from __future__ import annotations

import math
import time
from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from daemon.api.guards import rt, signed
from daemon.core import signing
from daemon.intake.requests import TokenBody


@post("/tokens", guards=[signed], opt={"uncapped": True}, status_code=200,
      summary="Mint a read token for one project (signed)")
async def mint(request: Request[Any, Any, Any], data: JSONBody[TokenBody]) -> dict[str, Any]:
    """A token `v1.<userId>.<projectId>.<exp>.<hexmac>` that reads the project's versions, logs, diffs, screenshots
    and log stream until `expiresAt` (unix seconds); pass it as `?token=` or `Authorization: Bearer`. Minting
    needs no call: any holder of the shared secret can compute one (see the README)."""
    runtime = rt(request)
    ttl = min(data.ttlSeconds, runtime.cfg.server.read_token_max_ttl_s)
    exp = math.floor(time.time()) + ttl
    token = signing.mint_token(runtime.cfg.secrets.hmac_secret, data.userId, data.projectId, exp)
    return {"token": token, "userId": data.userId, "projectId": data.projectId, "expiresAt": exp}


HANDLERS: list[Any] = [mint]
