"""The hostile-project corpus against a real daemon (root, bubblewrap, build user), under `checks = record` and
`fail`: it passes only if nothing leaks, nothing is poisoned, and a neighbour's next build is unchanged.

One module-scoped run per policy: a neighbour builds, mallory's hostile project builds (its lint check swapping
links into dist/ while the daemon zips, deploys and snapshots it; its page probing the network in the render
check), mallory rebuilds with changed dependencies (a networked install over the config its scripts planted), and
the neighbour builds again. Then every place the daemon put bytes is searched for what the attacks went after.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.e2e.hostile_project import generator_body
from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import wait_until
from tests.support.live import LiveDaemon

CANARY_DATA = "previewd-canary-in-the-data-dir-7f3a"
CANARY_OUTSIDE = "previewd-canary-root-only-outside-91c2"
MAGENTA = (255, 0, 255)
CONFIG_NAMES = {".npmrc", ".pnpmfile.cjs", ".yarnrc.yml", ".yarnrc", "bunfig.toml"}


class Canary:
    """A loopback HTTP service only an attacker would call: it records every request and answers a page of one
    unmistakable colour (so a screenshot that shows it is caught) and fake registry metadata."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(f"GET {self.path} host={self.headers.get('Host')}")
                body = b"<html><body style='margin:0;background:#ff00ff;height:2000px'>canary</body></html>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                hits.append(f"POST {self.path}")
                self.send_response(204)
                self.end_headers()

            do_CONNECT = do_GET  # a proxy= setting sends CONNECT

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    """What one policy's run left behind."""

    daemon: LiveDaemon
    canary: Canary
    data: Path
    shadow: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    neighbour_before: dict[str, bytes] = field(default_factory=dict)
    neighbour_after: dict[str, bytes] = field(default_factory=dict)


def _post(d: LiveDaemon, new: bool, user: str, project: str, prompt: str) -> dict[str, Any]:
    path = "/build-preview-for-new-project" if new else "/rebuild-preview"
    r = d.post(path, {"userId": user, "projectId": project, "prompt": prompt})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _settled(d: LiveDaemon, vid: str) -> dict[str, Any]:
    """The version once its late checks and its render check (when it went live) are recorded."""
    def done() -> dict[str, Any] | None:
        v: dict[str, Any] = d.get(f"/versions/{vid}").json()
        if v["status"] == "failed":
            raise AssertionError(f"{vid} failed: {v}\n" + d.get(f"/versions/{vid}/log").text[-4000:])
        checks = v.get("checks") or {}
        if v["status"] == "deployed" and checks.get("lint") and v.get("renderStatus"):
            return v
        return None

    return wait_until(done, 300, interval=0.25, what=f"{vid}'s checks and render being recorded")  # type: ignore[no-any-return]


def _zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def _artifact(data: Path, user: str, project: str, vid: str) -> Path:
    return data / "objects" / user / project / "snapshots" / f"{vid}.zip"


@pytest.fixture(scope="module", params=["record", "fail"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    policy = request.param
    tmp = tmp_path_factory.mktemp(f"hostile-{policy}")
    data = tmp / "data"
    data.mkdir()
    (data / "canary.txt").write_text(CANARY_DATA)
    os.chmod(data / "canary.txt", 0o600)
    outside = tmp / "outside-secret.txt"
    outside.write_text(CANARY_OUTSIDE)
    os.chmod(outside, 0o600)
    canary = Canary()
    gen = tmp / "gen.py"
    d = LiveDaemon(tmp, generator_config(gen, f'checks = "{policy}"\n[render]\nenabled = true\ntimeout_s = 30.0\n'))
    # The daemon's port is known only now: the generator (read at each generation) carries it.
    write_generator(tmp, generator_body(canary.port, d.port, str(data), str(outside), swap_seconds=15))
    try:
        shadow = Path("/etc/shadow").read_text().splitlines()[0]
    except OSError:
        shadow = "root:"
    d.start()
    r = Run(daemon=d, canary=canary, data=data, shadow=shadow)
    try:
        first = _post(d, True, "alice", "shop", "a plain neighbour page")
        assert first["success"] is True, first
        r.neighbour_before = _zip_members(_artifact(data, "alice", "shop", first["versionId"]))
        r.results["hostile"] = _settled(d, _post(d, True, "mallory", "evil", "hostile first")["versionId"])
        r.results["again"] = _settled(d, _post(d, False, "mallory", "evil", "hostile again")["versionId"])
        # A new project of another user after the attacks: a fresh install that a poisoned cache would serve.
        second = _post(d, True, "bob", "shop", "a plain neighbour page")
        assert second["success"] is True, second
        r.results["neighbour"] = d.get(f"/versions/{second['versionId']}").json()
        r.neighbour_after = _zip_members(_artifact(data, "bob", "shop", second["versionId"]))
        yield r
    finally:
        d.stop()
        canary.close()


def _secrets(r: Run) -> list[bytes]:
    return [CANARY_DATA.encode(), CANARY_OUTSIDE.encode(), r.shadow.encode()]


def _leaks(blob: bytes, r: Run) -> list[str]:
    return [s.decode() for s in _secrets(r) if s in blob]


def test_no_request_reached_the_loopback_service(run: Run) -> None:
    """Install scripts, the build, the lint config, the rebuild's networked install under planted config and the
    page's JavaScript in the render check: not one request reached a service listening on loopback."""
    assert run.canary.hits == [], run.canary.hits


def test_no_secret_in_any_artifact_preview_or_log(run: Run) -> None:
    found = []
    for root in (run.data / "objects", run.data / "previews", run.data / "logs"):
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                p = Path(dirpath) / name
                if p.is_symlink():
                    found.append(f"a link in the daemon's own store: {p} -> {os.readlink(p)}")
                    continue
                blob = p.read_bytes()
                found += [f"{p}: {s}" for s in _leaks(blob, run)]
                if name.endswith(".zip"):
                    for member, content in _zip_members(p).items():
                        found += [f"{p}!{member}: {s}" for s in _leaks(content, run)]
    assert found == []


def test_no_secret_and_no_link_in_git_history(run: Run) -> None:
    """Source commits and the dist window (refs/dist) of the hostile project: regular files only, no secret, and
    none of the config its scripts planted at any depth."""
    repo = run.data / "projects" / "mallory" / "evil" / "repo.git"
    refs = subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname)"], capture_output=True,
                          text=True, check=True).stdout.split()
    assert any(ref.startswith("refs/dist/") for ref in refs) or run.results["hostile"]["status"] == "failed", refs
    problems = []
    for ref in refs:
        tree = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--full-tree", ref], capture_output=True,
                              text=True, check=True).stdout.splitlines()
        for line in tree:
            meta, path = line.split("\t", 1)
            mode, _kind, sha = meta.split()
            if mode == "120000":
                problems.append(f"{ref}: link {path}")
            if Path(path).name in CONFIG_NAMES and not ref.startswith("refs/dist/"):
                problems.append(f"{ref}: planted config {path}")
            blob = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", sha], capture_output=True,
                                  check=True).stdout
            problems += [f"{ref}:{path}: {s}" for s in _leaks(blob, run)]
    assert problems == []


def test_planted_config_never_poisoned_the_shared_cache(run: Run) -> None:
    """pnpm names its metadata cache folders after the registry host: none may be named for the loopback
    service, and the hostile rebuild's networked install still used the configured registry."""
    cache = run.data / "cache"
    hosts = {p.name for p in cache.rglob("*") if p.is_dir() and p.parent.name.startswith("metadata")}
    assert not any("127.0.0.1" in h or "localhost" in h for h in hosts), hosts
    again = run.results["again"]
    log = run.daemon.get(f"/versions/{again['versionId']}/log").text
    assert "127.0.0.1:" + str(run.canary.port) not in log.replace(f"127.0.0.1:{run.daemon.port}", "")


def test_the_render_check_showed_nothing_but_the_preview(run: Run) -> None:
    v = run.results["hostile"]
    assert v["renderStatus"], v
    shot = run.daemon.get(f"/versions/{v['versionId']}/screenshot", params={"size": "desktop"})
    assert shot.status_code == 200, shot.text
    img = np.asarray(Image.open(io.BytesIO(shot.content)).convert("RGB"))
    magenta = int(np.all(img == np.array(MAGENTA, dtype=np.uint8), axis=-1).sum())
    assert magenta == 0, f"{magenta} pixels of the loopback service's page in the screenshot"


def test_the_neighbour_is_unchanged(run: Run) -> None:
    assert run.results["neighbour"]["status"] == "deployed", run.results["neighbour"]
    assert run.neighbour_after == run.neighbour_before
    assert run.daemon.get("/healthz").json() == {"ok": True}


def test_the_hostile_project_built(run: Run) -> None:
    """The attacks fail quietly, so the project itself builds: its output holds its own files, its reports say
    what each attack got (nothing), and the rebuild went through its networked install."""
    for key in ("hostile", "again"):
        v = run.results[key]
        assert v["status"] == "deployed", v
        assert v["checks"]["lint"]["status"] == "pass", v["checks"]
    page = run.daemon.preview(run.results["hostile"]["previewUrl"], "/reports/build.txt").text
    assert "read " in page and CANARY_DATA not in page, page
