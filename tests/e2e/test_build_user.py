"""Builds run as an unprivileged user when the daemon is root: they own their workspace, not the daemon's secrets."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support.live import LiveDaemon

# The build script records who it runs as and whether it can read the daemon's generated secret.
WHO = '''
build = ("mkdir -p dist && { echo uid=$(id -u); cat SECRET_PATH >/dev/null 2>&1 && echo secret=READ "
         "|| echo secret=denied; } > dist/index.html")
files = {"README.md": req["prompt"]}
'''


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp dir the build user can traverse (pytest's own tmp dirs are 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="previewd-user-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_build_runs_as_nobody_and_cannot_read_the_secret(open_tmp: Path) -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does); user switching needs it"
    data = open_tmp / "data"
    gen = write_generator(open_tmp, WHO.replace("SECRET_PATH", str(data / "hmac_secret")))
    d = LiveDaemon(open_tmp, generator_config(gen, "[render]\nenabled = false\n[sandbox]\nbuild_user = \"nobody\"\n"))
    d.config.write_text(d.config.read_text().replace('pnpm_store = "/tmp/previewd-test-pnpm-store"',
                                                     f'pnpm_store = "{open_tmp / "store"}"'))
    (data).mkdir()
    (data / "hmac_secret").write_text("a-secret-only-the-daemon-reads\n")
    os.chmod(data / "hmac_secret", 0o600)
    d.start()
    try:
        body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "who", "prompt": "x"}).json()
        assert body["success"] is True, body
        page = d.preview(body["previewUrl"]).text
        assert "uid=65534" in page and "secret=denied" in page, page
        again = d.post("/rebuild-preview", {"userId": "u", "projectId": "who", "prompt": "y"}).json()
        assert again["success"] is True, again
        ws = data / "projects" / "u" / "who" / "work"
        assert os.stat(ws / "dist" / "index.html").st_uid == 65534
    finally:
        d.stop()


# One dependency at first; the rebuild is a delta that adds another (the base's lockfile is carried over).
DEPS_DELTA = '''
import json, sys
sys.path.insert(0, REPO)
from tests.fakes.tiny_generator import contract_json
req = json.load(sys.stdin)
deps = {"is-number": "7.0.0"}
build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>"}
if req["prompt"] == "first":
    print(contract_json(build, files, deps=deps))
else:
    full = json.loads(contract_json(build, files, deps={**deps, "isobject": "3.0.1"}))
    print(json.dumps({"delta": True, "files": full["templateFiles"] + full["files"]}))
'''


def test_a_delta_rebuild_with_new_dependencies_installs_over_a_lockfile_the_build_user_owned(open_tmp: Path) -> None:
    # The first build gives the workspace (pnpm-lock.yaml with it) to the build user; the rebuild keeps the base's
    # lockfile byte for byte, so it stayed theirs, and pnpm, root without CAP_CHOWN in its view, failed with
    # `EPERM chown pnpm-lock.yaml` when it replaced it (keeping the owner).
    gen = open_tmp / "gen.py"
    gen.write_text(DEPS_DELTA.replace("REPO", repr(str(Path(__file__).resolve().parents[2]))))
    d = LiveDaemon(open_tmp, generator_config(gen, "[render]\nenabled = false\n[sandbox]\nbuild_user = \"nobody\"\n"))
    d.start()
    try:
        first = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "deps", "prompt": "first"}).json()
        assert first["success"] is True, first
        ws = open_tmp / "data" / "projects" / "u" / "deps" / "work"
        assert os.stat(ws / "pnpm-lock.yaml").st_uid == 65534  # what the rebuild starts from
        again = d.post("/rebuild-preview", {"userId": "u", "projectId": "deps", "prompt": "second"}).json()
        logs = "".join(p.read_text()[-2000:] for p in (open_tmp / "data" / "logs").glob("*.log"))
        assert again["success"] is True, (again, logs)
        lock = (ws / "pnpm-lock.yaml").read_text()
        assert "isobject" in lock and "is-number" in lock
    finally:
        d.stop()
