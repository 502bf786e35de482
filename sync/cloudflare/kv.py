"""CloudflareKV: the remote KV backend, Workers KV over its REST API with backoff on 429 and 5xx."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from sync.cloudflare.http import DEFAULT_API_BASE, Backoff, CloudflareHttp, envelope_errors
from sync.errors import RemoteError
from sync.kv.base import validate_key, validate_ttl

DEFAULT_BASE_URL = DEFAULT_API_BASE


class CloudflareKV:
    """Workers KV REST client; retries 429, 5xx and transport errors, then raises RemoteError."""

    name = "cloudflare"
    answers_locally = False

    def __init__(
        self,
        account_id: str,
        namespace_id: str,
        api_token: str,
        base_url: str = DEFAULT_BASE_URL,
        http: httpx.Client | None = None,
        *,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 10.0,
        timeout_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for label, value in (
            ("account_id", account_id),
            ("namespace_id", namespace_id),
            ("api_token", api_token),
        ):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"CloudflareKV needs a non-empty {label}")
        self._prefix = (
            f"{base_url.rstrip('/')}/accounts/{quote(account_id, safe='')}"
            f"/storage/kv/namespaces/{quote(namespace_id, safe='')}"
        )
        self._api = CloudflareHttp(api_token, http=http, timeout_s=timeout_s, sleep=sleep)
        self._backoff = Backoff(retries=max_retries, base_s=backoff_s, max_wait_s=max_wait_s)

    def __repr__(self) -> str:  # never show the token
        return f"CloudflareKV({self._prefix!r})"

    def _request(self, method: str, url: str, operation: str, **kwargs: Any) -> httpx.Response:
        """Send one request with retries; return the response for any status other than 429/5xx."""
        return self._api.send_retrying(method, url, operation, self._backoff, **kwargs)

    def _fail(self, resp: httpx.Response, operation: str) -> RemoteError:
        """A non-retryable RemoteError for a 4xx answer."""
        hint = "check the api_token, account_id and namespace_id" if resp.status_code in (401, 403) else None
        return RemoteError(
            envelope_errors(resp), operation=operation, retryable=False, status=resp.status_code, hint=hint
        )

    def _value_url(self, key: str) -> str:
        return f"{self._prefix}/values/{quote(key, safe='')}"

    def get_nowait(self, key: str) -> bytes | None:
        """Every read goes over the network: an event loop must call ``get`` in a thread."""
        validate_key(key)
        raise BlockingIOError("a Workers KV read always waits on the network")

    def get(self, key: str) -> bytes | None:
        """Return the raw value, or None on 404."""
        validate_key(key)
        resp = self._request("GET", self._value_url(key), "kv get")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, "kv get")
        return resp.content

    def put(self, key: str, value: bytes, ttl_seconds: int | None = None) -> None:
        """PUT the raw value, with ``expiration_ttl`` when a TTL is given."""
        validate_key(key)
        ttl = validate_ttl(ttl_seconds)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValueError("a KV value must be bytes")
        params = {"expiration_ttl": str(ttl)} if ttl is not None else None
        resp = self._request("PUT", self._value_url(key), "kv put", params=params, content=bytes(value))
        if resp.status_code not in (200, 201):
            raise self._fail(resp, "kv put")

    def delete(self, key: str) -> None:
        """DELETE the key; 404 counts as success."""
        validate_key(key)
        resp = self._request("DELETE", self._value_url(key), "kv delete")
        if resp.status_code not in (200, 204, 404):
            raise self._fail(resp, "kv delete")

    def keys(self, prefix: str = "") -> list[str]:
        """List key names with ``prefix``, following the cursor across pages."""
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        names: list[str] = []
        cursor = ""
        while True:
            params = {"limit": "1000"}
            if prefix:
                params["prefix"] = prefix
            if cursor:
                params["cursor"] = cursor
            resp = self._request("GET", f"{self._prefix}/keys", "kv keys", params=params)
            if resp.status_code != 200:
                raise self._fail(resp, "kv keys")
            try:
                body = resp.json()
                names.extend(str(item["name"]) for item in body.get("result") or [])
                cursor = str((body.get("result_info") or {}).get("cursor") or "")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise RemoteError(f"unexpected list answer: {exc}", operation="kv keys", retryable=False) from exc
            if not cursor:
                return sorted(names)

    def close(self) -> None:
        """Close the HTTP client when this object created it."""
        self._api.close()
