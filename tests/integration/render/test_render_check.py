"""Real Chromium against pages on a loopback server: statuses, errors, screenshots, blankness, cleanup."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from daemon.render import RenderInputError, check_page
from tests.integration.render.conftest import PREVIEW_HOST, Site, live_processes_mentioning


def _png_size(data: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img.size


def test_normal_page_is_ok_with_both_screenshots(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/"), workdir=workdir)
    assert r.status == "ok", r.detail
    assert r.http_status == 200
    assert (r.js_errors, r.failed_requests, r.blank) == ([], [], False)
    assert set(r.screenshots) == {"desktop", "mobile"}
    assert _png_size(r.screenshots["desktop"]) == (1280, 800)
    assert _png_size(r.screenshots["mobile"]) == (390, 844)
    # The box is drawn: the screenshot holds its blue, and the page background colour.
    desktop = Image.open(io.BytesIO(r.screenshots["desktop"])).convert("RGB")
    assert desktop.getpixel((24 + 100, 200)) != desktop.getpixel((1200, 700))


def test_blank_page_is_blank(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/blank"), workdir=workdir)
    assert r.status == "blank", r.detail
    assert r.blank is True
    assert r.http_status == 200
    assert (r.js_errors, r.failed_requests) == ([], [])
    assert "no visible text" in r.detail
    assert _png_size(r.screenshots["desktop"]) == (1280, 800)


def test_script_that_throws_is_errors_with_the_message(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/throws"), workdir=workdir)
    assert r.status == "errors"
    assert any("render exploded: widget is undefined" in e for e in r.js_errors), r.js_errors
    assert r.http_status == 200
    assert r.blank is True  # it also rendered nothing; errors wins the status


def test_missing_script_is_errors_with_the_failed_request(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/missing-script"), workdir=workdir)
    assert r.status == "errors"
    assert r.failed_requests == [f"GET {site.url('/assets/index-missing.js')} -> 404"]
    assert r.js_errors == []
    assert r.blank is False


def test_page_that_is_404_is_errors_with_its_status(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/no-such-page"), workdir=workdir)
    assert (r.status, r.http_status) == ("errors", 404)


def test_closed_port_is_errors_with_no_http_status(closed_port: int, workdir: Path) -> None:
    r = check_page(f"http://127.0.0.1:{closed_port}/", workdir=workdir)
    assert (r.status, r.http_status, r.screenshots) == ("errors", None, {})
    assert len(r.failed_requests) == 1 and "ERR_CONNECTION_REFUSED" in r.failed_requests[0]
    assert "did not load" in r.detail


def test_server_that_never_answers_is_errors_not_unavailable(mute_server: int, workdir: Path) -> None:
    r = check_page(f"http://127.0.0.1:{mute_server}/", timeout_s=6, workdir=workdir)
    assert (r.status, r.http_status, r.screenshots) == ("errors", None, {})
    assert r.failed_requests == [f"GET http://127.0.0.1:{mute_server}/ (no response)"]


def test_request_that_never_finishes_still_gets_screenshots(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/hanging-image"), timeout_s=8, workdir=workdir)
    assert r.status == "errors"
    assert r.failed_requests == [f"GET {site.url('/hang.png')} (no response)"]
    assert "load event did not fire" in r.detail
    assert _png_size(r.screenshots["mobile"]) == (390, 844)


def test_localhost_subdomain_preview_url_reaches_loopback(site: Site, workdir: Path) -> None:
    url = f"http://abc123.localhost:{site.port}/"
    r = check_page(url, workdir=workdir)
    assert r.status == "ok", r.detail
    assert f"abc123.localhost:{site.port}" in site.hosts


def test_host_header_reaches_a_host_routed_server(site: Site, workdir: Path) -> None:
    without = check_page(site.url("/only-preview/"), sizes={"desktop": (640, 480)}, workdir=workdir)
    assert (without.status, without.http_status) == ("errors", 404)
    r = check_page(site.url("/only-preview/"), host_header=PREVIEW_HOST, workdir=workdir)
    assert (r.status, r.http_status) == ("ok", 200), r.detail
    assert f"{PREVIEW_HOST}:{site.port}" in site.hosts


def test_custom_sizes(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/"), sizes={"tablet": (800, 600)}, workdir=workdir)
    assert r.status == "ok"
    assert list(r.screenshots) == ["tablet"]
    assert _png_size(r.screenshots["tablet"]) == (800, 600)


def test_wrong_chromium_path_is_unavailable(site: Site, workdir: Path) -> None:
    r = check_page(site.url("/"), chromium=str(workdir / "no-such-chromium"), workdir=workdir)
    assert (r.status, r.screenshots, r.http_status) == ("unavailable", {}, None)
    assert "not_found" in r.detail and "no-such-chromium" in r.detail


def _fake_chromium(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_chromium_that_crashes_is_unavailable(site: Site, workdir: Path, tmp_path: Path) -> None:
    fake = _fake_chromium(tmp_path / "crashing", "echo 'FATAL: no display for you' >&2; exit 3")
    r = check_page(site.url("/"), chromium=fake, workdir=workdir)
    assert r.status == "unavailable"
    assert "crashed" in r.detail and "code 3" in r.detail and "no display for you" in r.detail


def test_chromium_that_hangs_is_unavailable_and_its_tree_is_killed(site: Site, workdir: Path,
                                                                   tmp_path: Path) -> None:
    marker = f"{3000 + os.getpid() % 1000}.{os.getpid()}"
    fake = _fake_chromium(tmp_path / "hanging", f"sleep {marker} & sleep {marker}1")
    r = check_page(site.url("/"), chromium=fake, timeout_s=2, workdir=workdir)
    assert r.status == "unavailable"
    assert "timeout" in r.detail
    assert live_processes_mentioning(f"sleep {marker}") == []


@pytest.mark.parametrize(("url", "host"), [("ftp://example.test/", None), ("not a url", None),
                                           ("http://127.0.0.1:1/", "bad host/with slash")])
def test_bad_input_is_a_clear_error(url: str, host: str | None, workdir: Path) -> None:
    with pytest.raises(RenderInputError) as err:
        check_page(url, host_header=host, workdir=workdir)
    assert err.value.code == "invalid_url"


def test_bad_size_is_a_clear_error(site: Site, workdir: Path) -> None:
    with pytest.raises(RenderInputError) as err:
        check_page(site.url("/"), sizes={"huge": (100_000, 10)}, workdir=workdir)
    assert err.value.code == "invalid_size"
