"""The Cloudflare Pages deployments API over the room's one HTTP client (sync/cloudflare/http.py), and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from daemon.deployers.base import DeployError, DeployState
from sync.cloudflare.http import DEFAULT_API_BASE, REDACTED, CloudflareHttp, redact
from sync.cloudflare.http import parse_retry_after as _parse_retry_after

__all__ = ["DEFAULT_API_BASE", "REDACTED", "redact"]  # re-exported: the deployer and its tests import them here

# Cloudflare answers an exhausted token with a 5-minute block; assume that much when it omits retry-after.
DEFAULT_RETRY_AFTER_S = 300.0


class PagesApiError(DeployError):
    """A Pages API call failed. ``retryable`` says whether asking again later may succeed."""

    code = "cf_api_error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, cf_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.cf_code = cf_code


class PagesApiUnavailable(PagesApiError):
    """Network failure or a 5xx answer: retry with backoff."""

    code = "cf_unavailable"
    retryable = True


class RateLimited(PagesApiUnavailable):
    """429: the token's request budget is spent; wait ``retry_after_s`` before the next call."""

    code = "cf_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


class PagesApiRejected(PagesApiError):
    """A 4xx answer (bad token, unknown project, refused delete...): asking again will not help."""

    code = "cf_rejected"


class PagesNotFound(PagesApiRejected):
    """404: the deployment (or project) does not exist."""

    code = "cf_not_found"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from a ``retry-after`` header (the room's one parser); DEFAULT_RETRY_AFTER_S when absent."""
    wait = _parse_retry_after(value, now=now)
    return DEFAULT_RETRY_AFTER_S if wait is None else wait


def deployment_state(deployment: Mapping[str, Any]) -> DeployState:
    """Map a Pages deployment object to deployed / failed / pending from its stages."""
    stages = [s for s in deployment.get("stages") or [] if isinstance(s, Mapping)]
    latest = deployment.get("latest_stage")
    if isinstance(latest, Mapping):
        stages.append(latest)
    if any(s.get("status") in ("failure", "canceled") for s in stages):
        return "failed"
    if isinstance(latest, Mapping) and latest.get("name") == "deploy" and latest.get("status") == "success":
        return "deployed"
    return "pending"


def _error_text(errors: Any) -> tuple[str, int | None]:
    """Join Cloudflare's ``errors[]`` into one message; return it with the first error code."""
    if not isinstance(errors, list):
        return "", None
    parts: list[str] = []
    first_code: int | None = None
    for err in errors:
        if not isinstance(err, Mapping):
            continue
        code = err.get("code")
        if first_code is None and isinstance(code, int):
            first_code = code
        parts.append(f"{err.get('message', '')} (code {code})" if code is not None else str(err.get("message")))
    return "; ".join(parts), first_code


class PagesApi:
    """Pages deployment calls for one account and project, authenticated by an API token."""

    def __init__(
        self,
        account_id: str,
        api_token: str,
        project_name: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        http: httpx.Client | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.account_id = account_id
        self.project_name = project_name
        self._api = CloudflareHttp(api_token, api_base=api_base, http=http, timeout_s=timeout_s)

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        self._api.close()

    def _deployments_path(self) -> str:
        return (
            f"/accounts/{quote(self.account_id, safe='')}/pages/projects/"
            f"{quote(self.project_name, safe='')}/deployments"
        )

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send one request and unwrap the envelope; raise the PagesApiError subclass matching the failure."""
        what = f"{method} {path}"
        try:
            resp = self._api.send(method, self._api.base + path, params=params, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise PagesApiUnavailable(self._api.redact(f"Pages API {what}: {type(exc).__name__}: {exc}")) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            body = {}
        text, cf_code = _error_text(body.get("errors"))
        detail = self._api.redact(f"Pages API {what} -> HTTP {resp.status_code}" + (f": {text}" if text else ""))
        if resp.status_code == 429:
            raise RateLimited(detail, retry_after_s=parse_retry_after(resp.headers.get("retry-after")))
        if resp.status_code >= 500:
            raise PagesApiUnavailable(detail, status=resp.status_code, cf_code=cf_code)
        if resp.status_code == 404:
            raise PagesNotFound(detail, status=404, cf_code=cf_code)
        if resp.status_code >= 400:
            raise PagesApiRejected(detail, status=resp.status_code, cf_code=cf_code)
        if body.get("success") is not True:
            # A 2xx without success=true is a broken answer, not a verdict: let the caller retry.
            raise PagesApiUnavailable(detail + (": success=false" if not text else ""), status=resp.status_code)
        return body.get("result")

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        """Return the deployment object (id, url, aliases, stages, latest_stage ...)."""
        result = self._call("GET", f"{self._deployments_path()}/{quote(deployment_id, safe='')}")
        if not isinstance(result, dict):
            raise PagesApiUnavailable(f"Pages API returned no deployment object for {deployment_id}")
        return result

    def delete_deployment(self, deployment_id: str, *, force: bool = True) -> None:
        """Delete a deployment (``force``: even one with an alias). Raises PagesNotFound on 404."""
        params = {"force": "true"} if force else None
        self._call("DELETE", f"{self._deployments_path()}/{quote(deployment_id, safe='')}", params)

    def list_deployments(self, page: int = 1, per_page: int = 25, *, env: str | None = None) -> list[dict[str, Any]]:
        """Return one page of deployments, newest first; an empty list past the last page."""
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        if env is not None:
            params["env"] = env
        result = self._call("GET", self._deployments_path(), params)
        if result is None:
            return []
        if not isinstance(result, list):
            raise PagesApiUnavailable("Pages API list deployments returned a non-list result")
        return [d for d in result if isinstance(d, dict)]
