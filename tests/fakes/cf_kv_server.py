"""A loopback HTTP server enforcing the Workers KV REST rules, for tests of CloudflareKV.

Rules enforced: bearer auth; account and namespace ids; keys percent-decoded, non-empty, <= 512 bytes, not
``.``/``..``; ``expiration_ttl`` >= 60; 404 on missing keys; 429 (``Retry-After: 1``) when a key is written
twice within one second; an ``expiration`` header on reads of keys with a TTL; cursor-paginated ``/keys``.
Fault switches: ``fail_next(n, status)`` and ``fail_for(seconds, status)`` answer 5xx to every request.
Run standalone with ``python -m tests.fakes.cf_kv_server --token T`` (prints its base URL).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MIN_TTL = 60
MAX_KEY_BYTES = 512


class CloudflareKVServer:
    """The fake Workers KV API on 127.0.0.1; ``base_url`` is what CloudflareKV takes as ``base_url``."""

    def __init__(
        self,
        token: str = "test-token",
        account_id: str = "acct",
        namespace_id: str = "ns",
        *,
        port: int = 0,
        clock: Callable[[], float] = time.time,
        write_gap_s: float = 1.0,
    ) -> None:
        self.token = token
        self.account_id = account_id
        self.namespace_id = namespace_id
        self.clock = clock
        self.write_gap_s = write_gap_s
        self.store: dict[str, tuple[bytes, float | None]] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, key or path, status)
        self.writes: list[tuple[str, bytes]] = []  # every accepted PUT, in order
        self._last_write: dict[str, float] = {}
        self._fail_count = 0
        self._fail_until = 0.0
        self._fail_status = 503
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/client/v4``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/client/v4"

    def start(self) -> CloudflareKVServer:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-cf-kv", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status``."""
        with self._lock:
            self._fail_count, self._fail_status = count, status

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every request with ``status`` for ``seconds``."""
        with self._lock:
            self._fail_until, self._fail_status = time.monotonic() + seconds, status

    def heal(self) -> None:
        """End any fault window now."""
        with self._lock:
            self._fail_count, self._fail_until = 0, 0.0

    def live_value(self, key: str) -> bytes | None:
        """The stored value, honouring expiry (for assertions)."""
        with self._lock:
            entry = self.store.get(key)
            if entry is None or (entry[1] is not None and entry[1] <= self.clock()):
                return None
            return entry[0]

    # -- request handling -------------------------------------------------------------------------------

    def _injected_fault(self) -> int | None:
        with self._lock:
            if self._fail_count > 0:
                self._fail_count -= 1
                return self._fail_status
            if time.monotonic() < self._fail_until:
                return self._fail_status
        return None

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, headers, body)."""
        split = urlsplit(raw_path)
        query = parse_qs(split.query)
        if headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, 10000, "Authentication error")
        fault = self._injected_fault()
        if fault is not None:
            return _error(fault, 10013, "Service unavailable (injected)")
        prefix = f"/client/v4/accounts/{self.account_id}/storage/kv/namespaces/{self.namespace_id}"
        if not split.path.startswith(prefix + "/"):
            return _error(404, 10013, "Could not route to the namespace: unknown account or namespace")
        rest = split.path[len(prefix) + 1 :]
        if rest == "keys" and method == "GET":
            return self._list(query)
        if not rest.startswith("values/"):
            return _error(404, 7003, "No route for that URI")
        key = unquote(rest[len("values/") :])
        if not key or key in (".", "..") or len(key.encode("utf-8")) > MAX_KEY_BYTES:
            return _error(400, 10019, "Invalid key name")
        if method == "GET":
            return self._get(key)
        if method == "PUT":
            return self._put(key, query, body)
        if method == "DELETE":
            with self._lock:
                self.store.pop(key, None)
            return 200, {}, _envelope(None)
        return _error(405, 10000, "Method not allowed")

    def _get(self, key: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            entry = self.store.get(key)
            now = self.clock()
            if entry is None or (entry[1] is not None and entry[1] <= now):
                self.store.pop(key, None)
                return _error(404, 10009, "get: 'key not found'")
            extra = {"expiration": str(int(entry[1]))} if entry[1] is not None else {}
            return 200, {"Content-Type": "application/octet-stream", **extra}, entry[0]

    def _put(self, key: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict[str, str], bytes]:
        expires: float | None = None
        if "expiration_ttl" in query:
            try:
                ttl = int(query["expiration_ttl"][0])
            except ValueError:
                return _error(400, 10018, "Invalid expiration_ttl: not an integer")
            if ttl < MIN_TTL:
                return _error(400, 10018, f"Invalid expiration_ttl of {ttl}. Expiration TTL must be at least 60.")
            expires = self.clock() + ttl
        with self._lock:
            now = time.monotonic()
            last = self._last_write.get(key)
            if last is not None and now - last < self.write_gap_s:
                status, headers, payload = _error(429, 10097, "Too many requests: 1 write per second per key")
                headers["Retry-After"] = "1"
                return status, headers, payload
            self._last_write[key] = now
            self.store[key] = (body, expires)
            self.writes.append((key, body))
        return 200, {}, _envelope(None)

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        prefix = query.get("prefix", [""])[0]
        limit = max(10, min(1000, int(query.get("limit", ["1000"])[0])))
        start = int(query.get("cursor", ["0"])[0] or 0)
        now = self.clock()
        with self._lock:
            names = sorted(
                k for k, (_, exp) in self.store.items() if k.startswith(prefix) and (exp is None or exp > now)
            )
            page = [{"name": k} | ({"expiration": int(e)} if (e := self.store[k][1]) else {}) for k in names]
        chunk = page[start : start + limit]
        cursor = str(start + limit) if start + limit < len(page) else ""
        body = _envelope(chunk, result_info={"count": len(chunk), "cursor": cursor})
        return 200, {}, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = server.handle(self.command, self.path, self.headers, body)
                key = unquote(self.path.split("/values/", 1)[1].split("?", 1)[0]) if "/values/" in self.path else ""
                with server._lock:
                    server.requests.append((self.command, key or urlsplit(self.path).path, status))
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_DELETE = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

        return Handler


def _envelope(result: Any, **extra: Any) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": result, **extra}).encode()


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return status, {}, json.dumps(body).encode()


def main() -> None:
    """Run the fake until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--account", default="acct")
    parser.add_argument("--namespace", default="ns")
    args = parser.parse_args()
    server = CloudflareKVServer(args.token, args.account, args.namespace, port=args.port)
    print(server.base_url, flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
