"""Public and private surfaces: preview hosts never reach the API, the public listener serves previews only, and
metrics/health detail take a scraper's bearer token."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from tests.support import TEST_SECRET, ApiClient, auth, free_port, signed_headers, write_config

NOT_DEPLOYMENTS = ["a.b.localhost", "-x.localhost", "x-.localhost", "ghost.localhost", "GHOST.LOCALHOST:8080"]
# Not a Host at all (not DNS labels with an optional decimal port): 400 `bad_host` before any route.
ODD_HOSTS = [".localhost", "x_y.localhost", "x.localhost:abc", "x.localhost:1:2", "[x].localhost"]


def _api_paths(d: Daemon) -> list[tuple[str, str]]:
    """Every route of the OpenAPI schema (ids filled in), plus the schema itself."""
    with TestClient(d.app) as c:
        schema = c.get("/schema/openapi.json").json()
    out = [("GET", "/schema"), ("GET", "/schema/openapi.json")]
    for path, ops in schema["paths"].items():
        filled = re.sub(r"\{[^}]+\}", "01ARZ3NDEKTSV4RRFFQ69G5FAV", path)
        out += [(method.upper(), filled) for method in ops]
    return out


def test_a_non_deployment_host_gets_404_for_every_api_path(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory()
    (d.rt.data_dir / "previews" / "real").mkdir()
    (d.rt.data_dir / "previews" / "real" / "index.html").write_text("<h1>real</h1>")
    paths = _api_paths(d)
    assert ("GET", "/metrics") in paths and ("GET", "/healthz") in paths and len(paths) > 20
    with TestClient(d.asgi) as c:
        # valid signatures: a request falling through to the API would be answered there, not refused
        for host in NOT_DEPLOYMENTS:
            for method, path in paths:
                r = c.request(method, path, headers={"Host": host, **signed_headers(method, path)})
                assert r.status_code in (404, 405), (host, method, path, r.status_code)
                assert r.json()["error"]["code"] in ("deployment_not_found", "not_found", "method_not_allowed")
                assert "previewd" not in r.text and "openapi" not in r.text
        for host in ODD_HOSTS:
            for method, path in paths:
                r = c.request(method, path, headers={"Host": host, **signed_headers(method, path)})
                assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_host"), (host, method, path)
        # a deployment host serves its files; the bare domain and an IP are the API
        assert c.get("/", headers={"Host": "real.localhost:8080"}).text == "<h1>real</h1>"
        assert c.get("/healthz", headers={"Host": "localhost:8080"}).json() == {"ok": True}
        assert c.get("/healthz", headers={"Host": "127.0.0.1:8080"}).json() == {"ok": True}


def test_public_listener_app_serves_previews_only(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"preview_port": free_port()})
    assert d.public_asgi is not None
    (d.rt.data_dir / "previews" / "real").mkdir()
    (d.rt.data_dir / "previews" / "real" / "index.html").write_text("<h1>real</h1>")
    with TestClient(d.public_asgi) as c:
        assert c.get("/", headers={"Host": "real.localhost"}).text == "<h1>real</h1>"
        for host in ("127.0.0.1", "localhost", "example.com", "a.b.localhost"):
            for path in ("/healthz", "/metrics", "/schema", "/projects/u/p/preview", "/versions", "/status"):
                r = c.get(path, headers={"Host": host, **signed_headers("GET", path)})
                assert r.status_code == 404 and r.json()["error"]["code"] == "deployment_not_found", (host, path)
    # previews are linked on the public port
    assert d.rt.deployer.url_for("real").endswith(f":{d.cfg.server.preview_port}/")


def test_metrics_and_health_detail_accept_the_scraper_token(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"metrics_token_env": "SCRAPER_TOKEN"}, env={"SCRAPER_TOKEN": "scrape-me-0123"})
    with TestClient(d.app) as tc:
        c = ApiClient(tc)
        bearer = {"Authorization": "Bearer scrape-me-0123"}
        for path in ("/metrics", "/healthz?detail=1", "/healthz/detail"):
            assert c.get(path, sign_it=False, headers=bearer).status_code == 200, path
            wrong = c.get(path, sign_it=False, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "metrics_token_invalid"
            assert c.get(path, sign_it=False).status_code == 401
            assert c.get(path).status_code == 200  # a v2 signature works too
        assert c.get("/healthz?detail=0", sign_it=False).json() == {"ok": True}
        # the scraper's token reads metrics only, not a user's data
        assert c.get("/versions?userId=u&projectId=p", sign_it=False, headers=bearer).status_code == 401
    assert "scrape-me-0123" in d.cfg.secrets.values()  # redacted from logs like the other secrets
    assert "scrape-me-0123" not in repr(d.cfg.secrets)


@pytest.mark.timeout(120)
def test_serve_runs_both_listeners_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, public_port = free_port(), free_port()
    config = write_config(tmp_path, "[render]\nenabled = false\n", port=api_port)
    config.write_text(config.read_text().replace("[server]\n", f"[server]\npreview_port = {public_port}\n", 1))
    dep = tmp_path / "data" / "previews" / "dep1"
    dep.mkdir(parents=True)
    (dep / "index.html").write_text("<h1>public</h1>")
    env = {**os.environ, "PREVIEWD_HMAC_SECRET": TEST_SECRET, "PREVIEWD_CONFIG": str(config)}
    log = tmp_path / "daemon.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=5, trust_env=False) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if c.get(f"http://127.0.0.1:{public_port}/", headers={"Host": "dep1.localhost"}).status_code \
                            == 200 and c.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
            public = f"http://127.0.0.1:{public_port}"
            assert c.get(public + "/", headers={"Host": "dep1.localhost"}).text == "<h1>public</h1>"
            for path in ("/healthz", "/metrics", "/schema", "/status"):
                assert c.get(public + path, auth=auth()).status_code == 404, path
            assert c.get(f"http://127.0.0.1:{api_port}/metrics", auth=auth()).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
