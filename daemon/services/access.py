"""What the guards and the dashboard's sign-in check against: the config's secrets and caps, the in-memory windows
of failed attempts, and who owns a version (for read-token scopes)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection

from daemon.core import signing
from daemon.core.config import Config
from daemon.core.db import database
from daemon.core.ids import valid_version_id
from daemon.core.ratelimit import MemoryWindow
from daemon.ops import replication as syncops
from daemon.services.telemetry import Telemetry

if TYPE_CHECKING:
    from daemon.runtime import Runtime


def client_ip(conn: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address as the server sees it (uvicorn applies X-Forwarded-For from trusted proxies only)."""
    return conn.client.host if conn.client else "unknown"


class Access:
    """Authentication state of one app: in memory, per daemon (replays are refused across restarts by the nonce
    table, not here). Guards read it from `app.state.access`, since Litestar guards take no dependencies."""

    def __init__(self, rt: Runtime, telemetry: Telemetry) -> None:
        self._rt = rt
        self.cfg: Config = rt.cfg
        self.telemetry = telemetry
        self.auth_failures = MemoryWindow()  # failed authentications per IP
        self.read_cap_fallback = MemoryWindow()  # signed reads' per-IP cap while state.db cannot be written
        self.ui_sign_in_failures = MemoryWindow()  # the dashboard's password guesses, per IP

    @property
    def data_dir(self) -> Path:
        """The data dir (a full disk there turns some refusals into 503 disk_full)."""
        return self._rt.data_dir

    def owner_of(self, version_id: str) -> tuple[str, str] | None:
        """(userId, projectId) of a version held here or in the replica; None for an unknown (or malformed) id."""
        if not valid_version_id(version_id):
            return None
        # Two columns by primary key, without building a model: this runs on every token-authorised read.
        row = database.execute_sql("SELECT user_id, project_id FROM project_versions WHERE version_id = ?",
                                   (version_id,)).fetchone()
        if row is not None:
            return str(row[0]), str(row[1])
        remote = syncops.remote_version(self._rt.replica, version_id)
        return (str(remote["userId"]), str(remote["projectId"])) if remote else None

    def mint_read_token(self, user_id: str, project_id: str, ttl_s: int) -> dict[str, Any]:
        """A read token for one project, its lifetime capped by [server] read_token_max_ttl_s."""
        ttl = min(ttl_s, self.cfg.server.read_token_max_ttl_s)
        exp = math.floor(time.time()) + ttl
        token = signing.mint_token(self.cfg.secrets.hmac_secret, user_id, project_id, exp)
        return {"token": token, "userId": user_id, "projectId": project_id, "expiresAt": exp}
