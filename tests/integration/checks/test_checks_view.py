"""The checks' own view (issue 23): a check runs generated code (a tsc or eslint the project chose, its config,
its plugins) beside the bundle and while the daemon reads the build's output, so it sees the sources read-only
and the output dirs absent. A stand-in tsc (node_modules/.bin, as pnpm puts it) tries to write both, in the real
bubblewrap views as the build user."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.core.config import load
from daemon.runtime import Runtime
from tests.support import TEST_SECRET
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.fakes import FAKE_PNPM, FakeGenerator, MemoryDeployer
from tests.unit.pipeline.test_checks import COPY, TSCONFIG, _build, _checks, _project

# The build user must be able to run the stand-ins: the system's Python (the venv's may sit under /root, 0700).
PYTHON = "/usr/bin/python3"

# Waits for the bundle's page when it runs beside the bundle (a split chain), then tries every write it can.
TSC_WRITER = (
    f"#!{PYTHON}\nimport json, os, sys, time\n"
    "if json.load(open('package.json'))['scripts']['build'].startswith('tsc'):\n"
    "    for _ in range(400):\n"
    "        if os.path.exists('dist/index.html'):\n"
    "            break\n"
    "        time.sleep(0.05)\n"
    "out = {}\n"
    "for key, path in (('source', 'index.html'), ('new_source', 'src/planted.ts'), ('output', 'dist/index.html'),\n"
    "                  ('new_output', 'dist/planted.js'), ('build_info', 'node_modules/.tmp/x.tsbuildinfo')):\n"
    "    try:\n"
    "        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
    "        with open(path, 'w') as fh:\n"
    "            fh.write('owned by a check')\n"
    "        out[key] = 'written'\n"
    "    except OSError as exc:\n"
    "        out[key] = type(exc).__name__\n"
    "print('w.ts(1,1): error TS1: ' + json.dumps(out, sort_keys=True))\n"
    "sys.exit(2)\n")


@pytest.fixture
def confined() -> Iterator[Bench]:
    """The pipeline with real views (bubblewrap, the build user `nobody`) and fake pnpm/generator/deployer; in a
    dir the build user can traverse, the fake pnpm outside /tmp (each view has its own /tmp)."""
    top = Path(tempfile.mkdtemp(prefix="previewd-checks-view-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    pnpm = top / "pnpm"
    pnpm.write_text(FAKE_PNPM.format(python=PYTHON))
    pnpm.chmod(0o755)
    path = top / "previewd.toml"
    path.write_text(f'[paths]\ndata_dir = "{top / "data"}"\npnpm = "{pnpm}"\n[build]\naudit = "off"\n'
                    'warm_projects = 0\n[render]\nenabled = false\n[sandbox]\nbuild_user = "nobody"\n')
    cfg = load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
    gen, dep = FakeGenerator(), MemoryDeployer()
    rt = Runtime(cfg, generator=gen, deployer=dep)
    try:
        yield Bench(rt, gen, dep)
    finally:
        rt.close()
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("build", [f"tsc --noEmit && {COPY}", COPY], ids=["beside-the-bundle", "after-the-build"])
def test_a_check_cannot_write_the_sources_or_the_output(confined: Bench, build: str) -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does); the build user needs it"
    v = _build(confined, _project(build, {"tsconfig.json": TSCONFIG}, {"tsc": TSC_WRITER}))
    assert v.status == "deployed", v.failure_message
    tc = _checks(v)["typecheck"]
    assert tc["status"] == "fail", tc
    seen = json.loads(tc["diagnostics"][0]["message"])
    assert seen["build_info"] == "written", seen  # tsc -b's build info still has its place
    assert all(seen[k] != "written" for k in ("source", "new_source", "output", "new_output")), seen
    ws = confined.rt.layout.project_dir("u1", "p1") / "work"
    assert (ws / "index.html").read_text() == "<h1>Checked</h1>"
    assert not (ws / "src" / "planted.ts").exists() and not (ws / "dist" / "planted.js").exists()
    assert (ws / "dist" / "index.html").read_text() == "<h1>Checked</h1>"
    assert list(confined.dep.sites.values()) == [{"index.html": b"<h1>Checked</h1>"}]
