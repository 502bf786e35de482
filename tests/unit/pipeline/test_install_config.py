"""The pipeline's networked install sees only the daemon's configuration: a stand-in pnpm records, when it is asked
to install, every config file in the workspace, its environment and its command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from daemon.core.db import ProjectVersion
from daemon.intake.submit import BuildRequest, submit_new, submit_rebuild
from tests.fakes.tiny_generator import contract_json
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.test_pipeline import InlineQueue

RECORDING = '''#!{python}
import json, os, sys
if sys.argv[1:2] == ["install"]:
    found = sorted(os.path.join(d, f) for d, _dirs, files in os.walk(".") for f in files
                   if f in (".npmrc", ".yarnrc", ".yarnrc.yml", ".pnpmfile.cjs", "bunfig.toml"))
    with open({record!r}, "a") as fh:
        fh.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ), "found": found}}) + "\\n")
os.execv({fake!r}, [{fake!r}, *sys.argv[1:]])
'''


def _build(b: Bench, deps: dict[str, str], rebuild: bool) -> ProjectVersion:
    b.gen.queue.append(json.loads(contract_json("mkdir -p dist && cp index.html dist/",
                                                {"index.html": "<h1>x</h1>"}, deps=deps)))
    q = InlineQueue()
    v = (submit_rebuild if rebuild else submit_new)(b.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    b.pipeline.run(q.ids[0])
    return ProjectVersion.get_by_id(v.version_id)


def test_the_install_sees_no_planted_config_no_inherited_variable_and_pinned_flags(
        bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "installs.jsonl"
    fake = Path(bench.rt.cfg.paths.pnpm)
    wrapper = tmp_path / "recording-pnpm"
    wrapper.write_text(RECORDING.format(python=sys.executable, record=str(record), fake=str(fake)))
    wrapper.chmod(0o755)
    bench.rt.cfg.paths.pnpm = str(wrapper)
    for key in ("HTTPS_PROXY", "https_proxy", "npm_config_registry", "npm_config_proxy", "NPM_CONFIG_USERCONFIG",
                "pnpm_config_registry"):
        monkeypatch.setenv(key, "http://127.0.0.1:9/")  # the daemon's own environment: never the step's

    v1 = _build(bench, {}, rebuild=False)
    assert v1.status == "deployed", v1.failure_message
    nm = bench.rt.layout.project_dir("u1", "p1") / "work" / "node_modules"
    for d in (".cache", ".vite"):  # where generated code may write, and writing the sources does not reach
        (nm / d).mkdir(exist_ok=True)
        (nm / d / ".npmrc").write_text("registry=http://127.0.0.1:9/\n")
    (nm / ".cache" / ".yarnrc.yml").write_text("npmRegistryServer: http://127.0.0.1:9/\n")

    v2 = _build(bench, {"is-number": "7.0.0"}, rebuild=True)  # new dependencies: a networked install
    assert v2.status == "deployed", v2.failure_message
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(runs) == 2
    last = runs[-1]
    assert last["found"] == []
    leaked = [k for k in last["env"] if "proxy" in k.lower() or k.lower() in ("npm_config_registry",
                                                                              "npm_config_userconfig",
                                                                              "pnpm_config_registry")]
    assert leaked == []
    argv = last["argv"]
    for flag in ("--config.proxy=", "--config.https-proxy=", "--config.strict-ssl=true", "--ignore-pnpmfile"):
        assert flag in argv
    assert argv[argv.index("--registry") + 1] == "https://registry.npmjs.org/"
    assert argv[argv.index("--workspace-packages") + 1] == "."
    log = bench.rt.layout.log_path(v2.version_id).read_text()
    assert "before the install: removed package-manager config not written by the daemon" in log
    assert os.path.exists(nm / ".cache") and not (nm / ".cache" / ".npmrc").exists()


# The first install leaves a lockfile that resolves a registry-version dependency to a tarball on another host:
# the version records it, and a delta rebuild starts from it.
PLANTING = '''#!{python}
import os, subprocess, sys
if sys.argv[1:2] == ["install"]:
    with open({record!r}, "a") as fh:
        fh.write(repr(open("pnpm-lock.yaml").read() if os.path.exists("pnpm-lock.yaml") else None) + "\\n")
rc = subprocess.call([{fake!r}, *sys.argv[1:]])
if sys.argv[1:2] == ["install"] and os.path.exists({once!r}):
    os.unlink({once!r})
    open("pnpm-lock.yaml", "w").write({lock!r})
sys.exit(rc)
'''
EVIL_LOCK = ("lockfileVersion: '9.0'\npackages:\n  is-number@7.0.0:\n    resolution: {integrity: sha512-x, "
             "tarball: http://127.0.0.1:9/is-number.tgz}\n")


def test_a_lockfile_that_resolves_outside_the_registry_is_dropped_before_the_install(
        bench: Bench, tmp_path: Path) -> None:
    from daemon.project import netconfig

    assert netconfig.lockfile_reaches(EVIL_LOCK, "https://registry.npmjs.org/") == ["http://127.0.0.1:9/is-number.tgz"]
    mirror = EVIL_LOCK.replace("http://127.0.0.1:9/", "https://mirror.example/")
    assert netconfig.lockfile_reaches(mirror, "https://mirror.example/") == []
    assert netconfig.lockfile_reaches("resolution: {type: git, repo: https://x/y.git, commit: 1}", "") != []
    assert netconfig.lockfile_reaches("    url: http://127.0.0.1:9/node.tgz\n", "https://registry.npmjs.org/") == [
        "http://127.0.0.1:9/node.tgz"]

    record, once = tmp_path / "locks.txt", tmp_path / "once"
    once.write_text("")
    wrapper = tmp_path / "planting-pnpm"
    wrapper.write_text(PLANTING.format(python=sys.executable, record=str(record), once=str(once),
                                       fake=bench.rt.cfg.paths.pnpm, lock=EVIL_LOCK))
    wrapper.chmod(0o755)
    bench.rt.cfg.paths.pnpm = str(wrapper)
    assert _build(bench, {"is-number": "7.0.0"}, rebuild=False).status == "deployed"
    bench.gen.queue.append({"delta": True, "files": [{"path": "package.json", "content": json.dumps(
        {"name": "tiny", "version": "0.0.0", "private": True, "dependencies": {"is-number": "7.0.0", "isobject": "3"},
         "scripts": {"build": "mkdir -p dist && cp index.html dist/"}})}]})
    q = InlineQueue()
    v2 = submit_rebuild(bench.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v2 = ProjectVersion.get_by_id(v2.version_id)
    assert v2.status == "deployed", v2.failure_message
    seen = record.read_text().splitlines()
    assert len(seen) == 2 and seen[-1] == "None"  # the rebuild's install never saw the planted lockfile
    assert "pnpm-lock.yaml dropped: it resolves packages outside the registry (http://127.0.0.1:9/is-number.tgz)" \
        in bench.rt.layout.log_path(v2.version_id).read_text()
