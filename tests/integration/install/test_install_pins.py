"""Real pnpm: the network settings pinned on the install's and the audit's command line outrank every other
source pnpm reads (a project .npmrc, pnpm-workspace.yaml settings, `npm_config_*` and proxy variables), so even a
planted file the purge missed could not point a networked step at another server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.project import toolchain
from tests.support import SHARED_STORE, wait_until
from tests.support.recorder import Recorder

pytestmark = pytest.mark.pnpm


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


def _hostile_project(work: Path, url: str) -> dict[str, str]:
    """A project whose every config source names `url`; returns an environment that does too."""
    work.mkdir()
    (work / "package.json").write_text('{"name": "p", "version": "1.0.0", "dependencies": {"isobject": "3.0.1"}}')
    (work / ".npmrc").write_text(f"registry={url}\nproxy={url}\nhttps-proxy={url}\nstrict-ssl=false\n")
    (work / "pnpm-workspace.yaml").write_text(f"registry: {url}\nhttpsProxy: {url}\nhttpProxy: {url}\n"
                                              "strictSsl: false\n")
    home = work.parent / "home"
    home.mkdir()
    (home / ".npmrc").write_text(f"registry={url}\nproxy={url}\n")
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "npm_config_registry": url,
            "npm_config_proxy": url, "npm_config_https_proxy": url, "https_proxy": url, "HTTPS_PROXY": url,
            "http_proxy": url, "pnpm_config_registry": url}


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)


def _asks(argv: list[str], cwd: Path, env: dict[str, str], recorder: Recorder) -> bool:
    """The control: run unpinned until the recorder is asked (then stop pnpm: its retries take minutes)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: bool(recorder.hits) or proc.poll() is not None, 120, interval=0.1,
                   what="the unpinned install to finish or ask the planted server")
    finally:
        proc.kill()
        proc.wait()
    return bool(recorder.hits)


def test_pinned_install_and_audit_ask_only_the_configured_registry(tmp_path: Path, recorder: Recorder) -> None:
    tc = toolchain.resolve()
    env = _hostile_project(tmp_path / "work", recorder.url)
    # The control: without the pins, pnpm obeys them (so this test can fail).
    assert _asks([tc.pnpm, "install", "--ignore-scripts", "--store-dir", str(SHARED_STORE),
                  f"--config.cache-dir={tmp_path / 'control-cache'}"], tmp_path / "work", env, recorder)
    recorder.hits.clear()

    cache = tmp_path / "cache"
    res = _run(toolchain.install_argv(tc, SHARED_STORE, "", cache), tmp_path / "work", env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert recorder.hits == []
    assert [p.name for p in cache.glob("metadata*/*")] == ["registry.npmjs.org"]  # named after the host only
    assert "isobject@3.0.1" in (tmp_path / "work" / "pnpm-lock.yaml").read_text()

    _run(toolchain.audit_argv(tc, "", tmp_path / "audit-cache"), tmp_path / "work", env)
    assert recorder.hits == []  # the audit's answer is whatever the registry says; it never asked the planted one


def test_a_package_json_left_in_a_kept_output_dir_is_not_a_project_of_the_install(
        tmp_path: Path, recorder: Recorder) -> None:
    # A workspace keeps each package's build output between builds; pnpm matches the workspace's globs on disk,
    # so a package.json a build left there became a project whose dependencies (never seen by the daemon's
    # package.json policy) the next networked install fetched.
    tc = toolchain.resolve()
    work = tmp_path / "work"
    (work / "packages" / "ui" / "dist").mkdir(parents=True)
    (work / "package.json").write_text('{"name": "root", "version": "1.0.0", "private": true}')
    (work / "packages" / "ui" / "package.json").write_text('{"name": "ui", "version": "1.0.0"}')
    (work / "pnpm-workspace.yaml").write_text('packages:\n  - "packages/**"\n')
    planted = {"name": "planted", "version": "1.0.0", "dependencies": {"evil": f"{recorder.url}evil.tgz"}}
    (work / "packages" / "ui" / "dist" / "package.json").write_text(json.dumps(planted))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = toolchain.install_argv(tc, SHARED_STORE, "", tmp_path / "cache")
    assert _asks(argv, work, env, recorder)  # the globs alone: the planted project is installed
    recorder.hits.clear()
    res = _run(toolchain.install_argv(tc, SHARED_STORE, "", tmp_path / "cache", (".", "packages/ui")), work, env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert recorder.hits == []
    assert "packages/ui/dist" not in (work / "pnpm-lock.yaml").read_text()
