"""No generated code runs while the network is on: the project's own install scripts run after `pnpm install`,
without network; `packageManager` cannot switch pnpm; dependencies reaching outside the registry are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, log_of, page, start_daemon, victim_still_fine
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm


def _probe(event: str) -> str:
    """A node one-liner that tells whether it reached the daemon's own port (written into <event>.txt)."""
    write = f"require('fs').writeFileSync('{event}.txt', '{event}='+r+'\\n')"
    return ("node -e \"const w=r=>{" + write + "};require('http').get('http://127.0.0.1:@TARGET@/healthz',"
            "()=>w('reached')).on('error',()=>w('blocked'))\"")


ATTACKS = {
    "net": {"build": "mkdir -p dist && cat preinstall.txt postinstall.txt prepare.txt > dist/index.html",
            "extra": {"scripts": {e: _probe(e) for e in ("preinstall", "postinstall", "prepare")}}},
    "switch-pnpm": {"build": "mkdir -p dist && echo ran > dist/index.html",
                    "extra": {"packageManager": "pnpm@9.15.0", "devEngines": {"runtime": {"name": "node"}}}},
    "file-dep": {"build": "mkdir -p dist && cp node_modules/stolen/index.html dist/",
                 "deps": {"stolen": "file:../../../alice/site/work"}},
    "git-dep": {"build": "mkdir -p dist && echo hi > dist/index.html",
                "deps": {"left-pad": "github:left-pad/left-pad"}},
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    tmp = tmp_path_factory.mktemp("network")
    d = start_daemon(tmp, ATTACKS)
    (tmp / "target.txt").write_text(str(d.port))
    try:
        assert page(d, build(d, "alice", "site", "victim")) == VICTIM_PAGE
        yield d
    finally:
        d.stop()


def test_install_scripts_run_without_network(live: LiveDaemon) -> None:
    body = build(live, "mallory", "net", "net")
    assert page(live, body).split() == ["preinstall=blocked", "postinstall=blocked", "prepare=blocked"]
    log = log_of(live, body["versionId"])
    assert "install policy: `pnpm install --ignore-scripts --ignore-pnpmfile`" in log
    # pnpm ran first, with every script off; the project's scripts after it, in npm's order
    assert log.index("--ignore-scripts") < log.index("> tiny preinstall") < log.index("> tiny postinstall") \
        < log.index("> tiny prepare") < log.index("$ pnpm run")
    victim_still_fine(live)


def test_package_manager_fields_cannot_switch_the_toolchain(live: LiveDaemon) -> None:
    body = build(live, "mallory", "switch-pnpm", "switch-pnpm")
    assert page(live, body).strip() == "ran"
    assert "removed `packageManager`, `devEngines`" in log_of(live, body["versionId"])
    assert live.get(f"/versions/{body['versionId']}").json()["pnpmVersion"] == "10.34.9"
    victim_still_fine(live)


@pytest.mark.parametrize("attack", ["file-dep", "git-dep"])
def test_dependencies_outside_the_registry_are_refused(live: LiveDaemon, attack: str) -> None:
    body = build(live, "mallory", attack, attack)
    assert body["success"] is False, body
    assert body["error"]["code"] == "invalid_output", body
    assert "is not a registry version" in body["error"]["message"], body
    victim_still_fine(live)
