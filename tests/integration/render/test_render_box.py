"""The render check's browser in its box (issue 23, attack 3): its own user, its own network namespace, and a page
that reaches nothing but its own deployment, as daemon/publish/screens.py runs it (daemon/project/renderbox.py)."""

from __future__ import annotations

import io
import os
import pwd
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import pytest
from PIL import Image

from daemon.core.config import Config
from daemon.project import isolation, renderbox
from daemon.render import RenderReport, check_page
from daemon.render.origin import Answer, DirSource, HttpSource
from sandbox import safepath
from tests.integration.render.conftest import Site
from tests.support import make_config, wait_until
from tests.support.render_attack import Victim, attack_files, marker_pixels

LABEL = "site-01abc"
URL = f"http://{LABEL}.localhost:8080/"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching the browser's user needs root")


class Held(DirSource):
    """The deployment, but /hold.png waits until the test has looked at the browser's processes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.arrived = threading.Event()
        self.release = threading.Event()

    def get(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if path.startswith("/hold.png"):
            self.arrived.set()
            self.release.wait(30)
        return super().get(method, path, headers)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Config, Path, Path]]:
    """(config, deployment dir, scratch dir) of a daemon whose data dir is tmp/data."""
    cfg = make_config(tmp_path)
    data = tmp_path / "data"
    deployment = data / "previews" / LABEL
    deployment.mkdir(parents=True)
    scratch = safepath.ensure_dir(data, ["tmp", "render"])
    yield cfg, deployment, scratch


def _check(cfg: Config, scratch: Path, source: DirSource) -> RenderReport:
    data = scratch.parent.parent
    b = renderbox.browser_box(cfg, data, data / "store", scratch, tmp_bytes=512 * 2**20)
    assert b.wrap is not None, b.note
    return check_page(URL, source=source, workdir=scratch, env=b.env, wrap=b.wrap, chromium_sandbox=b.sandbox,
                      private_tmp=b.private_tmp, timeout_s=30)


def _browser_processes() -> list[psutil.Process]:
    """Chromium processes started by this test process (other tests on the machine run their own)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if os.path.basename(p.exe()).startswith("chrom"):
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_browser_runs_as_its_own_user_in_its_own_network_namespace(box: tuple[Config, Path, Path]) -> None:
    cfg, deployment, scratch = box
    (deployment / "index.html").write_text("<h1>Held open</h1><img src='/hold.png'>")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (40, 40, 200)).save(buf, "PNG")
    (deployment / "hold.png").write_bytes(buf.getvalue())
    source = Held(deployment)
    result: list[RenderReport] = []
    worker = threading.Thread(target=lambda: result.append(_check(cfg, scratch, source)))
    worker.start()
    try:
        assert source.arrived.wait(60), "the page never asked for /hold.png"
        procs = _browser_processes()
        assert procs, "no browser process found"
        user = renderbox.render_user(cfg)
        assert user is not None and user != isolation.code_user(cfg)
        uid = pwd.getpwnam(user).pw_uid
        daemon_net = os.readlink("/proc/self/ns/net")
        b = renderbox.browser_box(cfg, scratch.parent.parent, scratch.parent.parent / "store", scratch,
                                  tmp_bytes=512 * 2**20)
        for p in procs:
            assert uid != 0 and p.uids().real == uid and p.uids().effective == uid, (p.pid, p.uids())
            assert os.readlink(f"/proc/{p.pid}/ns/net") != daemon_net, p.pid
        main = [p for p in procs if not any(a.startswith("--type=") for a in p.cmdline())]
        assert main and all(("--no-sandbox" in p.cmdline()) == (not b.sandbox) for p in main)
        # The profile lives in the browser's private /tmp: nothing of it on the daemon's disk.
        assert all(f.name.endswith(".stderr") for f in scratch.iterdir())
    finally:
        source.release.set()
        worker.join(60)
    assert result and result[0].status == "ok", result and result[0].detail
    wait_until(lambda: not [p for p in _browser_processes() if p.status() != psutil.STATUS_ZOMBIE], 10,
               what="the browser's tree to be gone")


def test_page_reaches_nothing_but_its_deployment(box: tuple[Config, Path, Path]) -> None:
    cfg, deployment, scratch = box
    with Victim().running() as victim:
        for name, text in attack_files(victim.port, victim.port).items():
            (deployment / name).write_text(text)
        r = _check(cfg, scratch, DirSource(deployment))
    assert r.status != "unavailable", r.detail
    assert victim.hits == []  # not even the WebSocket or the preconnect, which no interception sees
    blocked = "\n".join(r.blocked_requests)
    for url in (f"http://127.0.0.1:{victim.port}/frame", f"http://127.0.0.1:{victim.port}/service-worker",
                f"http://127.0.0.1:{victim.port}/worker", "http://169.254.169.254/", "file:///etc/hostname"):
        assert url in blocked, (url, blocked)
    assert r.screenshots and all(marker_pixels(png) == 0 for png in r.screenshots.values())


def test_without_chromiums_sandbox_the_box_still_holds(box: tuple[Config, Path, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that refuses user namespaces to the render user: --no-sandbox, and still no way out."""
    cfg, deployment, scratch = box
    monkeypatch.setattr(renderbox, "chromium_sandbox", lambda wrap: (False, "refused in this test"))
    b = renderbox.browser_box(cfg, scratch.parent.parent, scratch.parent.parent / "store", scratch,
                              tmp_bytes=512 * 2**20)
    assert b.sandbox is False and "refused in this test" in b.note
    with Victim().running() as victim:
        for name, text in attack_files(victim.port, victim.port).items():
            (deployment / name).write_text(text)
        r = check_page(URL, source=DirSource(deployment), workdir=scratch, env=b.env, wrap=b.wrap,
                       chromium_sandbox=b.sandbox, private_tmp=b.private_tmp, timeout_s=30)
    assert r.status != "unavailable", r.detail
    assert victim.hits == [] and r.blocked_requests


def test_a_deployment_the_daemon_does_not_hold_is_fetched_from_its_origin(box: tuple[Config, Path, Path],
                                                                          site: Site) -> None:
    """A Pages deployment (or one built elsewhere): the daemon fetches its origin for the browser in the box."""
    cfg, deployment, scratch = box
    url = f"http://elsewhere-01abc.localhost:{site.port}/"
    source = renderbox.origin_source(url, deployment.parent, "localhost", 10)
    assert isinstance(source, HttpSource)
    b = renderbox.browser_box(cfg, scratch.parent.parent, scratch.parent.parent / "store", scratch,
                              tmp_bytes=512 * 2**20)
    r = check_page(url, source=source, workdir=scratch, env=b.env, wrap=b.wrap, chromium_sandbox=b.sandbox,
                   private_tmp=b.private_tmp, timeout_s=30)
    assert r.status == "ok", r.detail
    assert site.hosts and all(h == f"elsewhere-01abc.localhost:{site.port}" for h in site.hosts)
