"""A loopback HTTP server speaking the Cloudflare Pages + Direct Upload API with its documented envelopes."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Stage = tuple[str, str]  # (name, status)
STAGE_NAMES = ("queued", "initialize", "clone_repo", "build", "deploy")
# What a Direct Upload deployment goes through; each GET of the deployment advances it one step.
DEFAULT_PLAN: tuple[Stage, ...] = (("queued", "active"), ("deploy", "active"), ("deploy", "success"))
MSG_NO_PROJECT = "Project not found. The specified project name does not match any of your existing projects."
MSG_NO_DEPLOYMENT = "The deployment ID you have specified does not exist."
MSG_LIVE_PRODUCTION = "You cannot delete the active production deployment."  # code UNCONFIRMED
MSG_ALIASED = "You cannot delete a deployment that has an alias. Use force=true."
MSG_RATE_LIMITED = "Please wait and consider throttling your request speed"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any]) -> str:
    """A real-looking JWT (three base64url parts); wrangler decodes the payload to read ``exp``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"


@dataclass
class FakeDeployment:
    """Server-side state of one deployment."""

    id: str
    project: str
    branch: str
    environment: str
    commit_hash: str
    commit_message: str
    manifest: dict[str, str]
    created_on: str
    plan: list[Stage] = field(default_factory=list)
    latest: Stage = ("queued", "active")
    gets: int = 0

    def to_api(self, production_branch: str) -> dict[str, Any]:
        short = self.id[:8]
        alias_host = re.sub(r"[^a-z0-9]+", "-", self.branch.lower()).strip("-")[:28]
        aliases = (
            [f"https://{self.project}.pages.dev"]
            if self.environment == "production"
            else [f"https://{alias_host}.{self.project}.pages.dev"]
        )
        done = STAGE_NAMES.index(self.latest[0]) if self.latest[0] in STAGE_NAMES else 0
        stages = []
        for i, name in enumerate(STAGE_NAMES):
            started: str | None
            ended: str | None
            if i < done:
                status, started, ended = "success", self.created_on, self.created_on
            elif i == done:
                status = self.latest[1]
                started = self.created_on
                ended = self.created_on if status in ("success", "failure", "canceled") else None
            else:
                status, started, ended = "idle", None, None
            stages.append({"name": name, "status": status, "started_on": started, "ended_on": ended})
        return {
            "id": self.id,
            "short_id": short,
            "project_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.project)),
            "project_name": self.project,
            "environment": self.environment,
            "url": f"https://{short}.{self.project}.pages.dev",
            "created_on": self.created_on,
            "modified_on": self.created_on,
            "aliases": aliases,
            "production_branch": production_branch,
            "deployment_trigger": {
                "type": "ad_hoc",
                "metadata": {
                    "branch": self.branch,
                    "commit_hash": self.commit_hash,
                    "commit_message": self.commit_message,
                    "commit_dirty": True,
                },
            },
            "stages": stages,
            "latest_stage": stages[done],
            "build_config": {},
            "source": {"type": "direct_upload"},
            "is_skipped": False,
        }


class FakePagesApi:
    """The fake API. Use as a context manager; ``base_url`` is what CLOUDFLARE_API_BASE_URL should hold.

    Switches for tests: ``rate_limit(retry_after, times)``, ``fail_5xx(status, times)``,
    ``set_stage(id, name, status)``, ``stage_plan`` (default stages for new deployments),
    ``add_deployment(...)`` to seed one without an upload. ``requests`` records (method, path, auth).
    """

    def __init__(
        self,
        *,
        account_id: str = "0123456789abcdef0123456789abcdef",
        token: str = "cf-test-token-5ecret",
        project: str = "previewd-test",
        production_branch: str = "main",
    ) -> None:
        self.account_id = account_id
        self.token = token
        self.project = project
        self.production_branch = production_branch
        self.stage_plan: list[Stage] = list(DEFAULT_PLAN)
        self.deployments: dict[str, FakeDeployment] = {}
        self.assets: dict[str, bytes] = {}
        self.jwts: set[str] = set()
        self.requests: list[tuple[str, str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._limit: tuple[float, int | None] | None = None
        self._fail: tuple[int, int | None] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-cf-api", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/client/v4"

    def start(self) -> FakePagesApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakePagesApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test switches ---------------------------------------------------------------------------

    def rate_limit(self, retry_after: float = 300, times: int | None = None) -> None:
        """Answer the next ``times`` requests (all when None) with 429 and ``retry-after``."""
        with self._lock:
            self._limit = (retry_after, times)

    def fail_5xx(self, status: int = 503, times: int | None = None) -> None:
        """Answer the next ``times`` requests (all when None) with a 5xx envelope."""
        with self._lock:
            self._fail = (status, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._limit = None
            self._fail = None

    def set_stage(self, deployment_id: str, name: str, status: str) -> None:
        """Pin a deployment's latest stage (stops its automatic progression)."""
        with self._lock:
            dep = self.deployments[deployment_id]
            dep.latest = (name, status)
            dep.plan = []

    def add_deployment(
        self,
        *,
        branch: str = "p-seeded",
        commit_hash: str = "seeded",
        stage: Stage = ("deploy", "success"),
        created_on: str | None = None,
    ) -> str:
        """Seed a deployment directly (as if uploaded earlier); return its id."""
        dep = FakeDeployment(
            id=str(uuid.uuid4()),
            project=self.project,
            branch=branch,
            environment="production" if branch == self.production_branch else "preview",
            commit_hash=commit_hash,
            commit_message="seeded",
            manifest={},
            created_on=created_on or _now(),
            latest=stage,
        )
        with self._lock:
            self.deployments[dep.id] = dep
        return dep.id

    # -- API logic -------------------------------------------------------------------------------

    def _project_obj(self) -> dict[str, Any]:
        config = {"compatibility_date": "2024-01-01", "compatibility_flags": [], "env_vars": {}}
        latest = self._latest_production()
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.project)),
            "name": self.project,
            "subdomain": f"{self.project}.pages.dev",
            "domains": [f"{self.project}.pages.dev"],
            "production_branch": self.production_branch,
            "created_on": "2024-01-01T00:00:00Z",
            "source": None,
            "build_config": {},
            "deployment_configs": {"production": dict(config), "preview": dict(config)},
            "latest_deployment": latest.to_api(self.production_branch) if latest else None,
            "canonical_deployment": latest.to_api(self.production_branch) if latest else None,
        }

    def _latest_production(self) -> FakeDeployment | None:
        prod = [d for d in self.deployments.values() if d.environment == "production"]
        return max(prod, key=lambda d: d.created_on) if prod else None

    def _fault(self) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        with self._lock:
            if self._limit is not None:
                retry_after, times = self._limit
                if times is not None:
                    self._limit = (retry_after, times - 1) if times > 1 else None
                body = _envelope(None, errors=[(971, MSG_RATE_LIMITED)])
                return 429, {"retry-after": f"{retry_after:g}"}, body
            if self._fail is not None:
                status, times = self._fail
                if times is not None:
                    self._fail = (status, times - 1) if times > 1 else None
                return status, {}, _envelope(None, errors=[(10000, "Internal server error")])
        return None

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        """Route one request; returns (status, headers, JSON body)."""
        auth = headers.get("Authorization", "")
        with self._lock:
            self.requests.append((method, path, auth))
        fault = self._fault()
        if fault:
            return fault
        if not path.startswith("/client/v4/"):
            return 404, {}, _envelope(None, errors=[(7003, "No route for that URI")])
        route = path[len("/client/v4") :]
        bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""

        if route.startswith("/pages/assets/"):
            if bearer not in self.jwts:
                return 401, {}, _envelope(None, errors=[(8000000, "Invalid upload JWT")])
            return self._assets(route, body)

        if bearer != self.token:
            return 403, {}, _envelope(None, errors=[(10000, "Authentication error")])
        m = re.fullmatch(r"/accounts/([^/]+)/pages/projects/([^/]+)(/.*)?", route)
        if not m:
            with self._lock:
                self.unknown.append((method, path))
            return 404, {}, _envelope(None, errors=[(7003, "Could not route to " + route)])
        account, project, rest = m.group(1), m.group(2), m.group(3) or ""
        if account != self.account_id:
            return 403, {}, _envelope(None, errors=[(10000, "Authentication error")])
        if project != self.project:
            return 404, {}, _envelope(None, errors=[(8000007, MSG_NO_PROJECT)])

        with self._lock:
            if rest == "" and method == "GET":
                return 200, {}, _envelope(self._project_obj())
            if rest == "/upload-token" and method == "GET":
                jwt = make_jwt({"exp": int(time.time()) + 3600, "accountId": account, "projectName": project})
                self.jwts.add(jwt)
                return 200, {}, _envelope({"jwt": jwt})
            if rest == "/deployments" and method == "POST":
                return self._create(headers.get("Content-Type", ""), body)
            if rest == "/deployments" and method == "GET":
                return self._list(query)
            dm = re.fullmatch(r"/deployments/([^/]+)", rest)
            if dm:
                dep = self.deployments.get(dm.group(1))
                if dep is None:
                    return 404, {}, _envelope(None, errors=[(8000009, MSG_NO_DEPLOYMENT)])
                if method == "GET":
                    dep.gets += 1
                    if dep.plan:
                        dep.latest = dep.plan.pop(0)
                    return 200, {}, _envelope(dep.to_api(self.production_branch))
                if method == "DELETE":
                    force = query.get("force", [""])[0] == "true"
                    latest_prod = self._latest_production()
                    if latest_prod is not None and latest_prod.id == dep.id:
                        return 400, {}, _envelope(None, errors=[(8000034, MSG_LIVE_PRODUCTION)])
                    if dep.environment == "preview" and not force and self._is_branch_head(dep):
                        return 400, {}, _envelope(None, errors=[(8000035, MSG_ALIASED)])
                    del self.deployments[dep.id]
                    return 200, {}, _envelope(None)
            self.unknown.append((method, path))
            return 404, {}, _envelope(None, errors=[(7003, "Could not route to " + route)])

    def _is_branch_head(self, dep: FakeDeployment) -> bool:
        same = [d for d in self.deployments.values() if d.branch == dep.branch]
        return max(same, key=lambda d: d.created_on).id == dep.id

    def _assets(self, route: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return 400, {}, _envelope(None, errors=[(8000000, "Invalid JSON body")])
        with self._lock:
            if route == "/pages/assets/check-missing":
                hashes = payload.get("hashes", []) if isinstance(payload, dict) else []
                return 200, {}, _envelope([h for h in hashes if h not in self.assets])
            if route == "/pages/assets/upload":
                if not isinstance(payload, list):
                    return 400, {}, _envelope(None, errors=[(8000000, "Expected an array of files")])
                for item in payload:
                    value = item.get("value", "")
                    self.assets[item["key"]] = base64.b64decode(value) if item.get("base64") else value.encode()
                return 200, {}, _envelope({"successful_key_count": len(payload), "unsuccessful_keys": []})
            if route == "/pages/assets/upsert-hashes":
                return 200, {}, _envelope(True)
        return 404, {}, _envelope(None, errors=[(7003, "Could not route to " + route)])

    def _create(self, content_type: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        if not msg.is_multipart():
            return 400, {}, _envelope(None, errors=[(8000000, "Expected multipart/form-data")])
        fields: dict[str, str] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload.decode("utf-8", errors="replace")
        try:
            manifest = json.loads(fields.get("manifest", ""))
        except ValueError:
            return 400, {}, _envelope(None, errors=[(8000096, "Invalid manifest")])
        missing = [h for h in manifest.values() if h not in self.assets]
        if missing:
            return 400, {}, _envelope(None, errors=[(8000014, f"Missing {len(missing)} uploaded assets")])
        branch = fields.get("branch") or self.production_branch
        dep = FakeDeployment(
            id=str(uuid.uuid4()),
            project=self.project,
            branch=branch,
            environment="production" if branch == self.production_branch else "preview",
            commit_hash=fields.get("commit_hash", ""),
            commit_message=fields.get("commit_message", ""),
            manifest=manifest,
            created_on=_now(),
            plan=list(self.stage_plan),
        )
        self.deployments[dep.id] = dep
        return 200, {}, _envelope(dep.to_api(self.production_branch))

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        env = query.get("env", [None])[0]
        page = max(1, int(query.get("page", ["1"])[0]))
        per_page = max(1, min(100, int(query.get("per_page", ["25"])[0])))
        deps = sorted(self.deployments.values(), key=lambda d: d.created_on, reverse=True)
        if env:
            deps = [d for d in deps if d.environment == env]
        chunk = deps[(page - 1) * per_page : page * per_page]
        body = _envelope([d.to_api(self.production_branch) for d in chunk])
        body["result_info"] = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(deps),
            "total_pages": (len(deps) + per_page - 1) // per_page,
        }
        return 200, {}, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = self._read_chunked()
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                try:
                    status, headers, payload = api.handle(
                        self.command, url.path, parse_qs(url.query), self.headers, body
                    )
                except Exception as exc:  # a bug in the fake must show up as a 500, not a hang
                    status, headers, payload = 500, {}, _envelope(None, errors=[(10000, repr(exc))])
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _read_chunked(self) -> bytes:
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        return Handler


def _envelope(result: Any, *, errors: Sequence[tuple[int, str]] = ()) -> dict[str, Any]:
    return {
        "success": not errors,
        "errors": [{"code": c, "message": m} for c, m in errors],
        "messages": [],
        "result": result,
    }
