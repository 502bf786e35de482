"""The dashboard over the real app (Litestar TestClient): sign-in, sessions, CSRF, pages, actions, and where
/ui is not served (a preview Host, the public listener). Rows are written straight into SQLite."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from daemon.api.previews import make_public_asgi
from daemon.cli.serve import Daemon
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.ui.access import check_password, check_token, hash_password, mint_token
from tests.support import TEST_SECRET, in_process_daemon, signed_headers

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD)
PAGES = ["/ui/", "/ui/?window=7d", "/ui/projects", "/ui/projects?q=al", "/ui/projects/alice/site"]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with in_process_daemon(tmp_path, f'[ui]\npassword_hash = "{HASH}"\n') as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[TestClient[Any]]:
    with TestClient(daemon.app) as c:
        yield c


def csrf_of(c: TestClient[Any], path: str = "/ui/sign-in") -> str:
    m = re.search(r'name="_csrf_token" value="([^"]+)"', c.get(path).text)
    assert m, f"no CSRF field on {path}"
    return m.group(1)


def sign_in(c: TestClient[Any], **form: str) -> httpx.Response:
    return c.post("/ui/sign-in", data={**form, "_csrf_token": csrf_of(c)}, follow_redirects=False)


def deployed(user: str = "alice", project: str = "site", prompt: str = "first", parent: str | None = None,
             **fields: Any) -> ProjectVersion:
    v = versions.create(None, user_id=user, project_id=project, prompt=prompt, kind="new" if not parent else
                        "rebuild", parent_version_id=parent)
    return versions.go_live(None, v.version_id, 60, build_duration_ms=1500, preview_url="http://x.localhost/",
                            **fields)


# -- credentials --------------------------------------------------------------------------------------------------

def test_password_hash_round_trip_and_junk() -> None:
    assert check_password(HASH, PASSWORD)
    assert not check_password(HASH, PASSWORD + "!")
    assert not check_password(HASH, "")
    for junk in ("", "plain", "scrypt$1$1$1$x$y", "scrypt$99999999$8$1$AA$AA", "md5$a$b$c$d$e",
                 HASH.replace("scrypt$16384", "scrypt$abc")):
        assert not check_password(junk, PASSWORD)


def test_ui_token_checks_mac_and_expiry() -> None:
    tok = mint_token(TEST_SECRET, 60, now=1000)
    assert check_token(TEST_SECRET, tok, now=1001)
    assert not check_token(TEST_SECRET, tok, now=1061)  # expired
    assert not check_token("another secret", tok, now=1001)
    assert not check_token(TEST_SECRET, tok[:-1] + ("0" if tok[-1] != "0" else "1"), now=1001)
    assert not check_token(TEST_SECRET, "ui1.99999999999.abc", now=1001)
    with pytest.raises(ValueError):
        mint_token(TEST_SECRET, 0)


# -- sign-in, sessions, CSRF ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [*PAGES, "/ui/versions/01JAAAAAAAAAAAAAAAAAAAAAAA",
                                  "/ui/diff/01JAAAAAAAAAAAAAAAAAAAAAAA/01JBBBBBBBBBBBBBBBBBBBBBBB",
                                  "/ui/versions/01JAAAAAAAAAAAAAAAAAAAAAAA/log-stream"])
def test_signed_out_visitor_is_sent_to_sign_in(client: TestClient[Any], path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/sign-in?next=")


def test_sign_in_with_password_then_pages_open(client: TestClient[Any], daemon: Daemon) -> None:
    deployed()
    r = sign_in(client, password=PASSWORD, next="/ui/projects")
    assert r.status_code == 303 and r.headers["location"] == "/ui/projects"
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "alice/<strong>site</strong>" in client.get("/ui/projects").text


def test_wrong_password_and_token_are_refused_and_counted(client: TestClient[Any]) -> None:
    assert sign_in(client, password="nope").status_code == 401
    assert sign_in(client, token=mint_token("not the daemon's secret", 60)).status_code == 401
    assert client.get("/ui/", follow_redirects=False).status_code == 303  # still signed out


def test_sign_in_with_a_minted_token(client: TestClient[Any]) -> None:
    r = sign_in(client, token=mint_token(TEST_SECRET, 60))
    assert r.status_code == 303
    assert client.get("/ui/").status_code == 200


def test_next_never_leaves_the_dashboard(client: TestClient[Any]) -> None:
    for evil in ("https://evil.example/", "//evil.example/ui/", "/ui//evil.example", "/api"):
        r = sign_in(client, password=PASSWORD, next=evil)
        assert r.headers["location"] == "/ui/", evil


def test_forged_form_without_csrf_token_is_refused(client: TestClient[Any], daemon: Daemon) -> None:
    v = deployed()
    sign_in(client, password=PASSWORD)
    # A cross-site form carries the session cookie but cannot read the CSRF token.
    r = client.post(f"/ui/versions/{v.version_id}/pin", data={}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(f"/ui/versions/{v.version_id}/pin", data={"_csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    assert versions.get(v.version_id).pinned is False
    r = client.post(f"/ui/versions/{v.version_id}/pin", data={"_csrf_token": csrf_of(client, "/ui/")},
                    follow_redirects=False)
    assert r.status_code == 303
    assert versions.get(v.version_id).pinned is True


def test_sign_in_itself_needs_the_csrf_token(client: TestClient[Any]) -> None:
    r = client.post("/ui/sign-in", data={"password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403


def test_signed_json_api_is_untouched_by_the_ui_csrf(client: TestClient[Any]) -> None:
    v = deployed()
    path = f"/versions/{v.version_id}/pin"
    r = client.post(path, content=b"{}", headers={"content-type": "application/json",
                                                  **signed_headers("POST", path, b"{}")})
    assert r.status_code == 200 and r.json()["pinned"] is True


def test_sign_out_ends_the_session(client: TestClient[Any]) -> None:
    sign_in(client, password=PASSWORD)
    assert client.get("/ui/").status_code == 200
    client.post("/ui/sign-out", data={"_csrf_token": csrf_of(client, "/ui/")})
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_signed_out_cookie_signs_no_one_in(daemon: Daemon) -> None:
    """Issue 23: sign-out cleared only the browser's copy; a cookie kept elsewhere stayed good for 12 hours."""
    with TestClient(daemon.app) as c, TestClient(daemon.app) as thief:
        sign_in(c, password=PASSWORD)
        cookie = c.cookies.get("previewd_ui_session")
        assert cookie
        thief.cookies.set("previewd_ui_session", cookie, path="/ui")
        assert thief.get("/ui/", follow_redirects=False).status_code == 200  # the copy works while signed in
        c.post("/ui/sign-out", data={"_csrf_token": csrf_of(c, "/ui/")})
        assert thief.get("/ui/", follow_redirects=False).status_code == 303
        assert thief.get("/ui/projects", follow_redirects=False).status_code == 303


def test_a_password_change_ends_every_session(tmp_path: Path) -> None:
    """Sessions begun with the password and with a token both end when `[ui] password_hash` changes; a restart
    with the same password keeps them (so it is the change that ends them)."""
    cookies = []
    with in_process_daemon(tmp_path, f'[ui]\npassword_hash = "{HASH}"\n') as d:
        for form in ({"password": PASSWORD}, {"token": mint_token(TEST_SECRET, 600)}):
            with TestClient(d.app) as c:
                sign_in(c, **form)
                cookies.append(c.cookies.get("previewd_ui_session"))
    assert all(cookies)

    def status_with(password_hash: str) -> list[int]:
        with in_process_daemon(tmp_path, f'[ui]\npassword_hash = "{password_hash}"\n') as d:
            codes = []
            for cookie in cookies:
                with TestClient(d.app) as c:
                    c.cookies.set("previewd_ui_session", cookie, path="/ui")
                    codes.append(c.get("/ui/", follow_redirects=False).status_code)
            return codes

    assert status_with(HASH) == [200, 200]
    assert status_with(hash_password("a new password")) == [303, 303]


# -- where /ui is not ------------------------------------------------------------------------------------------

def _asgi_get(app: Any, path: str, host: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}") as c:
            return await c.get(path, follow_redirects=False)

    return asyncio.run(go())


@pytest.mark.parametrize("host", ["abc123.localhost", "abc123.localhost:8080", "x.y.localhost"])
def test_ui_is_not_served_on_a_preview_host(daemon: Daemon, host: str) -> None:
    for path in ("/ui/", "/ui/sign-in", "/ui/static/ui.js"):
        r = _asgi_get(daemon.asgi, path, host)
        assert r.status_code == 404 and "sign in" not in r.text.lower(), (host, path)
    assert _asgi_get(daemon.asgi, "/ui/sign-in", "127.0.0.1:8080").status_code == 200  # the API host does serve it


def _raw_get(app: Any, path: str, hosts: list[bytes]) -> tuple[int, bytes]:
    """One GET through the ASGI app with these Host header values, verbatim (httpx would refuse to send them)."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", h) for h in hosts], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080)}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("hosts", [[b"x.localhost:1:2"], [b"[x].localhost"], [b"x.localhost:"], [b"x.localhost:99999"],
                                   [b"x.localhost:+80"], [b"x.local_host"], [b"x..localhost"], [b"x.localhost@evil"],
                                   [b"x.localhost\n"], [b"[::1]x"], [b"[fe80::1%eth0]"], [b""],
                                   [b"127.0.0.1:8080", b"x.localhost"]])
def test_an_odd_host_is_refused_before_any_route(daemon: Daemon, hosts: list[bytes]) -> None:
    """Issue 23: `x.localhost:1:2` and `[x].localhost` reached /ui/sign-in and /schema. A Host that is not DNS labels
    (or an IPv6 literal) with an optional decimal port, or two Host headers, is a 400 on every path."""
    for path in ("/ui/sign-in", "/schema", "/"):
        status, body = _raw_get(daemon.asgi, path, hosts)
        assert status == 400 and b"bad_host" in body, (hosts, path, status)
    assert _raw_get(make_public_asgi(daemon.rt.layout.previews, "localhost"), "/", hosts)[0] == 400


@pytest.mark.parametrize("host", [b"127.0.0.1:8080", b"localhost", b"LocalHost:8080", b"[::1]:8080", b"[::1]",
                                  b"api.example.com.", b"droplet-1.example.com:443"])
def test_ordinary_api_hosts_still_reach_the_api(daemon: Daemon, host: bytes) -> None:
    assert _raw_get(daemon.asgi, "/ui/sign-in", [host])[0] == 200, host


def test_ui_is_not_served_on_the_public_listener(daemon: Daemon) -> None:
    public = make_public_asgi(daemon.rt.layout.previews, "localhost")
    for host in ("127.0.0.1", "droplet.example.com"):
        r = _asgi_get(public, "/ui/sign-in", host)
        assert r.status_code == 404 and r.json()["error"]["code"] == "deployment_not_found"


def test_ui_can_be_turned_off(tmp_path: Path) -> None:
    with in_process_daemon(tmp_path, "[ui]\nenabled = false\n") as d, TestClient(d.app) as c:
        assert c.get("/ui/sign-in").status_code == 404


# -- pages and actions -----------------------------------------------------------------------------------------

def test_project_page_shows_timeline_forks_and_live(client: TestClient[Any]) -> None:
    a = deployed(prompt="first")
    b = deployed(prompt="second", parent=a.version_id)
    c = deployed(prompt="fork <script>alert(1)</script>", parent=a.version_id)  # built from an older base
    sign_in(client, password=PASSWORD)
    page = client.get("/ui/projects/alice/site").text
    assert page.index(c.version_id) < page.index(b.version_id) < page.index(a.version_id)  # newest first
    assert "forked from an older version" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # prompts are escaped
    assert f'class="version deployed is-live" id="v-{c.version_id}"' in page  # the live row is marked
    assert page.count(" is-live") == 1


def test_ui_undo_and_pin_use_the_domain_functions(client: TestClient[Any]) -> None:
    a = deployed(prompt="first")
    b = deployed(prompt="second", parent=a.version_id)
    sign_in(client, password=PASSWORD)
    confirm = client.get("/ui/projects/alice/site/confirm/undo")
    assert confirm.status_code == 200 and 'action="/ui/projects/alice/site/undo"' in confirm.text
    r = client.post("/ui/projects/alice/site/undo", data={"_csrf_token": csrf_of(client, "/ui/")},
                    follow_redirects=False)
    assert r.status_code == 303
    assert versions.navigation("alice", "site")["liveVersionId"] == a.version_id
    assert versions.navigation("alice", "site")["redo"] == [b.version_id]


def test_failed_action_shows_an_html_error(client: TestClient[Any]) -> None:
    deployed()
    sign_in(client, password=PASSWORD)
    r = client.post("/ui/projects/alice/site/redo", data={"_csrf_token": csrf_of(client, "/ui/")})
    assert r.status_code == 409 and "nothing_to_redo" in r.text and "<html" in r.text


def test_overview_counts_the_window(client: TestClient[Any]) -> None:
    deployed()
    v = versions.create(None, user_id="bob", project_id="p", prompt="x", kind="new")
    versions.update(None, v.version_id, status="failed", failure_reason="install_failed", build_duration_ms=900)
    sign_in(client, password=PASSWORD)
    page = client.get("/ui/").text
    assert re.search(r">2 finished</a>, <a [^>]*>1 failed</a> \(50%\)", page)
    assert "install_failed" in page and "<svg" in page


def test_empty_states_say_what_to_do(client: TestClient[Any]) -> None:
    sign_in(client, password=PASSWORD)
    assert "No projects yet" in client.get("/ui/projects").text
    assert "No build finished" in client.get("/ui/").text
    assert "restore it from object storage" in client.get("/ui/projects/nobody/nothing").text
    assert "Show all projects" in client.get("/ui/projects?q=zzz").text


def test_bad_ids_are_client_errors(client: TestClient[Any]) -> None:
    sign_in(client, password=PASSWORD)
    assert client.get("/ui/projects/a%20b/c").status_code == 400
    assert client.get("/ui/versions/nope").status_code == 404
    assert client.get("/ui/projects/alice/site?before=junk").status_code == 400
    assert client.get("/ui/compare?a=x&b=y").status_code == 400


def test_ui_rebuild_from_a_version_queues_the_apis_rebuild(client: TestClient[Any]) -> None:
    a = deployed(prompt="first")
    deployed(prompt="second", parent=a.version_id)
    sign_in(client, password=PASSWORD)
    page = client.get(f"/ui/versions/{a.version_id}/confirm/rebuild").text
    assert 'name="prompt"' in page and ">first</textarea>" in page
    r = client.post(f"/ui/versions/{a.version_id}/rebuild",
                    data={"prompt": "first, in green", "_csrf_token": csrf_of(client, "/ui/")}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].endswith("?done=rebuild")
    new_id = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
    v = versions.get(new_id)
    assert (v.status, v.kind, v.parent_version_id, v.prompt) == ("queued", "rebuild", a.version_id, "first, in green")
    r = client.post(f"/ui/versions/{a.version_id}/rebuild", data={"prompt": "again", "_csrf_token":
                                                                   csrf_of(client, "/ui/")})
    assert r.status_code == 409 and "build_in_flight" in r.text  # the API's rule, the API's code


def test_overview_shows_the_metrics_gauges(client: TestClient[Any], daemon: Daemon) -> None:
    v = versions.create(None, user_id="alice", project_id="busy", prompt="x", kind="new")
    versions.update(None, v.version_id, status="building")
    sign_in(client, password=PASSWORD)
    page = client.get("/ui/").text
    text = client.get("/metrics", headers=signed_headers("GET", "/metrics")).text
    quota = re.search(r"^previewd_pages_deployments_quota (\S+)$", text, re.M)
    running = re.search(r"^previewd_builds_running (\S+)$", text, re.M)
    assert quota and running and float(running.group(1)) == 1
    assert f"0 of {int(float(quota.group(1)))} this month" in page
    assert f'<dd>1: <a href="/ui/versions/{v.version_id}">' in page  # the gauge, and the build running now


def test_password_guessing_stops_at_the_cap_but_a_token_still_works(tmp_path: Path) -> None:
    text = f'[ui]\npassword_hash = "{HASH}"\n[rate_limits]\nfailed_auth_per_ip_per_hour = 3\n'
    with in_process_daemon(tmp_path, text) as d, TestClient(d.app) as c:
        assert [sign_in(c, password=f"guess{i}").status_code for i in range(4)] == [401, 401, 401, 429]
        assert sign_in(c, password=PASSWORD).status_code == 429  # the right one is not even checked now
        assert c.get("/ui/", follow_redirects=False).status_code == 303
        assert sign_in(c, token=mint_token(TEST_SECRET, 60)).status_code == 303
        assert c.get("/ui/").status_code == 200


def test_timeline_thumbnail_is_a_small_jpeg_of_the_screenshot(client: TestClient[Any], daemon: Daemon) -> None:
    import io

    from PIL import Image

    from daemon.publish import screens

    v = deployed(render_status="ok")
    buf = io.BytesIO()
    Image.new("RGB", (1280, 2400), "#c00").save(buf, "PNG")
    path = daemon.rt.layout.local_object(screens.screen_key(v, "desktop"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    sign_in(client, password=PASSWORD)
    assert f'src="/ui/thumb/{v.version_id}"' in client.get("/ui/projects/alice/site").text
    r = client.get(f"/ui/thumb/{v.version_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (320, 200) and len(r.content) < 20_000  # the first screenful only, scaled down
    assert img.getpixel((10, 10))[0] > 180
    other = deployed(project="other")
    assert client.get(f"/ui/thumb/{other.version_id}").status_code == 404  # no screenshot: no thumbnail


def test_diff_and_version_pages_say_what_is_missing(client: TestClient[Any]) -> None:
    a = deployed(prompt="first")  # rows without a source commit or screenshots
    b = deployed(prompt="second", parent=a.version_id)
    other = deployed(project="elsewhere")
    sign_in(client, password=PASSWORD)
    page = client.get(f"/ui/diff/{a.version_id}/{b.version_id}")
    assert page.status_code == 200
    assert "has no source snapshot" in page.text and "No visual diff" in page.text
    assert "different projects" in client.get(f"/ui/diff/{a.version_id}/{other.version_id}").text
    version = client.get(f"/ui/versions/{b.version_id}").text
    assert "No source snapshot" in version and "No log was written" in version


def test_week_figures_are_recomputed_when_a_build_finishes(client: TestClient[Any], daemon: Daemon) -> None:
    deployed(project="one")
    sign_in(client, password=PASSWORD)
    assert "1 finished" in client.get("/ui/?window=7d").text
    deployed(project="two")  # a row only: no build-done hook ran, the short cache still holds
    assert "1 finished" in client.get("/ui/?window=7d").text
    assert "2 finished" in client.get("/ui/?window=24h").text  # the day is always computed afresh
    daemon.ops.metrics.builds.labels(status="deployed").inc()  # what a finished build does
    assert "2 finished" in client.get("/ui/?window=7d").text


def test_the_version_page_says_which_path_the_bundle_took(client: TestClient[Any]) -> None:
    warm_v = deployed(prompt="warm")
    versions.update(None, warm_v.version_id, timings=json.dumps({"queue": 12, "write": 30, "bundle": 812,
                                                                  "bundle_warm": 812, "export": 9, "deploy": 40}))
    cold_v = deployed(prompt="cold")
    versions.update(None, cold_v.version_id, timings=json.dumps({"bundle": 3000, "bundle_cold": 3000}))
    sign_in(client, password=PASSWORD)
    page = client.get(f"/ui/versions/{warm_v.version_id}").text
    assert "warm bundler; queue" in page and "bundle warm" in page and "bundle cold" not in page
    assert "<dt>Bundle</dt><dd>cold; bundle cold" in client.get(f"/ui/versions/{cold_v.version_id}").text
