"""The render check's browser runs inside the sandbox layer's cgroups: their limits bind it, their kill ends it."""

from __future__ import annotations

from pathlib import Path

import psutil

import sandbox
from daemon.render import check_page
from sandbox.layers import make_layer
from tests.integration.render.conftest import Site


def _confined(site: Site, workdir: Path, memory_bytes: int) -> str:
    layer = make_layer("cgroup_v1")
    plan = layer.prepare(sandbox.Limits(memory_bytes=memory_bytes, pids=512, wall_seconds=60))
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    try:
        report = check_page(site.url("/"), workdir=workdir, join_cgroups=plan.cgroup_procs,
                            env=sandbox.safe_env({"PATH": "/usr/bin:/bin"}, home=home))
        return report.status
    finally:
        layer.kill()
        layer.cleanup()


def test_browser_fits_in_the_build_limits(site: Site, workdir: Path) -> None:
    status = _confined(site, workdir, 1 << 30)
    assert status == "ok"


def test_browser_over_the_memory_limit_is_stopped_not_the_daemon(site: Site, workdir: Path) -> None:
    status = _confined(site, workdir, 24 * 2**20)
    assert status in ("unavailable", "errors")  # the kernel OOM-kills the browser inside its cgroup
    left = [p for p in psutil.process_iter(["cmdline"]) if any(str(workdir) in a for a in (p.info["cmdline"] or []))]
    assert all(p.status() == psutil.STATUS_ZOMBIE for p in left if p.is_running())
