"""Real pnpm: the network settings pinned on the install's and the audit's command line outrank every other
source pnpm reads (a project .npmrc, pnpm-workspace.yaml settings, `npm_config_*` and proxy variables), so even a
planted file the purge missed could not point a networked step at another server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.build import toolchain
from tests.support import SHARED_STORE
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


def test_pinned_install_and_audit_ask_only_the_configured_registry(tmp_path: Path, recorder: Recorder) -> None:
    tc = toolchain.resolve()
    env = _hostile_project(tmp_path / "work", recorder.url)
    # The control: without the pins, pnpm obeys them (so this test can fail).
    control = _run([tc.pnpm, "install", "--ignore-scripts", "--store-dir", str(SHARED_STORE),
                    f"--config.cache-dir={tmp_path / 'control-cache'}", "--config.fetch-retries=0"],
                   tmp_path / "work", env)
    assert control.returncode != 0 and recorder.hits, (control.stdout[-2000:], recorder.hits)
    recorder.hits.clear()

    cache = tmp_path / "cache"
    res = _run(toolchain.install_argv(tc, SHARED_STORE, "", cache), tmp_path / "work", env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert recorder.hits == []
    assert [p.name for p in cache.glob("metadata*/*")] == ["registry.npmjs.org"]  # named after the host only
    assert "isobject@3.0.1" in (tmp_path / "work" / "pnpm-lock.yaml").read_text()

    _run(toolchain.audit_argv(tc, "", tmp_path / "audit-cache"), tmp_path / "work", env)
    assert recorder.hits == []  # the audit's answer is whatever the registry says; it never asked the planted one
