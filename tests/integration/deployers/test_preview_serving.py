"""The preview wrapper served by a real uvicorn: static files by Host, caching, fallbacks, refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.api.previews import CHUNK, make_preview_asgi
from daemon.deployers.base import Deployment
from daemon.deployers.local import LocalDeployer
from tests.integration.deployers.deployer_support import (
    ASSET,
    BIG_SIZE,
    GUIDE,
    INDEX,
    LiveServer,
    LogLines,
    inner_app,
    raw_get,
    request_for,
)

PASSWD = Path("/etc/passwd").read_bytes()


@pytest.fixture
def deployed(deployer: LocalDeployer, site: Path, log: LogLines) -> Deployment:
    """The test site, deployed."""
    return deployer.deploy(request_for(site), log)


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    """An httpx client aimed at the live server."""
    with httpx.Client(base_url=live.base, timeout=10) as c:
        yield c


def get(client: httpx.Client, live: LiveServer, dep: Deployment, path: str, **headers: str) -> httpx.Response:
    return client.get(path, headers={"Host": live.host(dep.deployment_id), **headers})


def test_index_is_served_uncached(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    r = get(client, live, deployed, "/")
    assert r.status_code == 200
    assert r.content == INDEX
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert get(client, live, deployed, "/index.html").content == INDEX


def test_hashed_asset_is_immutable(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    r = get(client, live, deployed, "/assets/index-abc123.js")
    assert r.status_code == 200
    assert r.content == ASSET
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-length"] == str(len(ASSET))
    css = get(client, live, deployed, "/assets/index-def456.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/favicon.svg", "image/svg+xml"),
        ("/app.wasm", "application/wasm"),
        ("/site.webmanifest", "application/manifest+json"),
        ("/data.json", "application/json"),
    ],
)
def test_content_types_and_plain_cache(
    client: httpx.Client, live: LiveServer, deployed: Deployment, path: str, ctype: str
) -> None:
    r = get(client, live, deployed, path)
    assert r.status_code == 200
    assert r.headers["content-type"] == ctype
    assert r.headers["cache-control"] == "no-cache"


def test_spa_fallback_and_nested_routes(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    for route in ("/dashboard", "/dashboard/settings/", "/assets"):
        r = get(client, live, deployed, route)
        assert (r.status_code, r.content) == (200, INDEX), route
        assert r.headers["cache-control"] == "no-cache"
    assert get(client, live, deployed, "/docs/guide").content == GUIDE
    assert get(client, live, deployed, "/docs/guide/").content == GUIDE
    assert get(client, live, deployed, "/about").content == b"<p>about</p>"


def test_missing_file_with_extension_is_404(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    for path in ("/assets/missing-abc123.js", "/nope.css", "/docs/guide/x.png"):
        r = get(client, live, deployed, path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"


def test_etag_revalidation(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    etag = get(client, live, deployed, "/assets/index-abc123.js").headers["etag"]
    r = get(client, live, deployed, "/assets/index-abc123.js", **{"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    weak = get(client, live, deployed, "/assets/index-abc123.js", **{"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    other = get(client, live, deployed, "/assets/index-abc123.js", **{"If-None-Match": '"other"'})
    assert (other.status_code, other.content) == (200, ASSET)
    assert get(client, live, deployed, "/index.html").headers["etag"] != etag


def test_head_sends_headers_only(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    r = client.head("/assets/index-abc123.js", headers={"Host": live.host(deployed.deployment_id)})
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(ASSET))
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"


def test_other_methods_are_405(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    r = client.post("/", headers={"Host": live.host(deployed.deployment_id)}, content=b"x")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_large_file_is_served_whole(client: httpx.Client, live: LiveServer, deployed: Deployment, site: Path) -> None:
    r = get(client, live, deployed, "/big.bin")
    assert r.status_code == 200
    assert r.headers["content-length"] == str(BIG_SIZE)
    assert r.content == (site / "big.bin").read_bytes()


def test_unknown_deployment_is_404(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    r = client.get("/", headers={"Host": live.host("nope-01jdq8z5v7k3m9qx2r4t6w8y0a")})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "deployment_not_found"


def test_temp_dirs_are_never_served(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    (live.previews / ".tmp-half-1234").mkdir()
    (live.previews / ".tmp-half-1234" / "index.html").write_bytes(b"half")
    r = client.get("/", headers={"Host": live.host(".tmp-half-1234")})
    # not even a DNS name (an empty first label): neither served nor passed to the API behind
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_host"
    r = client.get("/", headers={"Host": live.host("tmp-half-1234")})
    assert r.status_code == 404 and r.json()["error"]["code"] == "deployment_not_found"


def test_deleted_deployment_stops_being_served(
    client: httpx.Client, live: LiveServer, deployed: Deployment, deployer: LocalDeployer
) -> None:
    assert get(client, live, deployed, "/").status_code == 200
    deployer.delete(deployed.deployment_id)
    assert get(client, live, deployed, "/").status_code == 404


def test_other_hosts_pass_through_to_the_api(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    for host in (f"127.0.0.1:{live.port}", f"localhost:{live.port}", "example.com"):
        r = client.get("/healthz", headers={"Host": host})
        assert r.status_code == 200, host
        assert r.json() == {"inner": True, "path": "/healthz"}
    for host in ("a.b.localhost", "-x.localhost"):  # under the preview domain: never the API
        r = client.get("/healthz", headers={"Host": host})
        assert r.status_code == 404 and r.json()["error"]["code"] == "deployment_not_found", host
    for host in ("x.localhost:port", "x.localhost:1:2", "[x].localhost"):  # no Host at all: never the API either
        r = client.get("/healthz", headers={"Host": host})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_host", host
    r = client.post("/generate", content=b"{}")
    assert r.json() == {"inner": True, "path": "/generate"}


@pytest.mark.parametrize(
    "target",
    [
        "/" + "../" * 16 + "etc/passwd",
        "/assets/" + "../" * 16 + "etc/passwd",
        "/" + "%2e%2e/" * 16 + "etc/passwd",
        "/" + "%2E%2E%2F" * 16 + "etc%2Fpasswd",
        "/" + "..%5c" * 16 + "etc%5cpasswd",
        "/assets%5c..%5cindex.html",
        "/index.html%00.js",
        "/./index.html",
        "//etc/passwd",
        "/%252e%252e/%252e%252e/etc/passwd",
    ],
)
def test_traversal_is_refused(live: LiveServer, deployed: Deployment, target: str) -> None:
    status, body = raw_get(live.port, target, live.host(deployed.deployment_id))
    assert status in (200, 400, 404)
    assert PASSWD not in body
    assert b"root:" not in body
    if status == 200:  # only the SPA fallback may answer: the deployment's own index.html
        assert body == INDEX


@pytest.mark.parametrize("target", ["/" + "../" * 16 + "etc/passwd", "/" + "%2e%2e/" * 16 + "etc/passwd", "/a%00b"])
def test_traversal_is_a_client_error(live: LiveServer, deployed: Deployment, target: str) -> None:
    status, _ = raw_get(live.port, target, live.host(deployed.deployment_id))
    assert status == 400


def test_symlinks_planted_after_deploy_are_not_followed(
    client: httpx.Client, live: LiveServer, deployed: Deployment
) -> None:
    root = live.previews / deployed.deployment_id
    (root / "planted.txt").symlink_to("/etc/passwd")
    (root / "assets" / "planted-abc123.js").symlink_to("/etc/passwd")
    (root / "sys").symlink_to("/etc")
    (live.previews / "evil-link").symlink_to(root)
    for path in ("/planted.txt", "/assets/planted-abc123.js", "/sys/passwd.txt", "/sys/hostname.x"):
        r = get(client, live, deployed, path)
        assert r.status_code == 404, path
        assert b"root:" not in r.content
    fallback = get(client, live, deployed, "/sys/passwd")
    assert (fallback.status_code, fallback.content) == (200, INDEX)
    r = client.get("/index.html", headers={"Host": live.host("evil-link")})
    assert r.status_code == 404


def test_symlinks_in_the_build_are_neither_copied_nor_served(
    client: httpx.Client, live: LiveServer, deployed: Deployment
) -> None:
    for path in ("/leak.txt", "/assets/leak-abc123.js", "/etc/hostname.x"):
        assert get(client, live, deployed, path).status_code == 404, path
    for path in ("/passwd", "/etc/passwd"):
        r = get(client, live, deployed, path)
        assert (r.status_code, r.content) == (200, INDEX), path


def test_large_files_stream_in_chunks(deployed: Deployment, live: LiveServer) -> None:
    """Called in-process to see the ASGI messages: a big file goes out in bounded chunks."""
    app = make_preview_asgi(inner_app, live.previews, "localhost")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/big.bin",
        "headers": [(b"host", f"{deployed.deployment_id}.localhost".encode())],
    }
    asyncio.run(app(scope, receive, send))
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert sent[0]["status"] == 200
    assert len(bodies) >= BIG_SIZE // CHUNK
    assert all(len(m["body"]) <= CHUNK for m in bodies)
    assert sum(len(m["body"]) for m in bodies) == BIG_SIZE
    assert [m.get("more_body", False) for m in bodies][-1] is False


def test_lifespan_and_websockets(live: LiveServer, deployed: Deployment) -> None:
    """Non-http scopes pass through, except a websocket to a preview host, which is closed."""
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    app = make_preview_asgi(inner, live.previews, "localhost")
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {}

    host = [(b"host", f"{deployed.deployment_id}.localhost".encode())]
    asyncio.run(app({"type": "lifespan"}, receive, send))
    asyncio.run(app({"type": "websocket", "path": "/", "headers": host}, receive, send))
    asyncio.run(app({"type": "websocket", "path": "/", "headers": [(b"host", b"localhost")]}, receive, send))
    assert seen == ["lifespan", "websocket"]
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_json_error_bodies(client: httpx.Client, live: LiveServer, deployed: Deployment) -> None:
    r = get(client, live, deployed, "/nope.js")
    assert r.headers["content-type"] == "application/json"
    assert set(json.loads(r.content)["error"]) == {"code", "message"}
