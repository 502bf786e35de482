"""The usage meter on a real build (issue 19): the CPU seconds metered are the sandbox's own figures, every step,
and a build that passes its plan's CPU quota while it runs is not stopped (the next one is refused)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar.testing import TestClient

import sandbox
from daemon.core import quotas
from daemon.core.db import BuildUsage
from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import ApiClient

if TYPE_CHECKING:
    from daemon.cli.serve import Daemon

# A build script that spends a little CPU in node, so the figure is well above zero.
BURN = '''
build = "node -e 'let x = 0; for (let i = 0; i < 4e7; i++) x += i' && mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>"}
'''


def test_cpu_seconds_metered_from_a_real_build_match_the_sandbox(
        tmp_path: Path, make_daemon: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[sandbox.Result] = []
    real_run = sandbox.run

    def spy(*args: Any, **kwargs: Any) -> sandbox.Result:  # the real sandbox; only its answers are kept
        res = real_run(*args, **kwargs)
        seen.append(res)
        return res

    monkeypatch.setattr(sandbox, "run", spy)
    plans = '\n[plans.free]\nbuilds = 10\nbuild_cpu_seconds = 0.01\n[quotas]\ndefault_plan = "free"\n'
    d = make_daemon(generator_config(write_generator(tmp_path, BURN)) + plans, immediate=True,
                    render={"enabled": False})
    with TestClient(d.asgi) as client:
        r = ApiClient(client, d).post("/build-preview-for-new-project",
                                      {"userId": "u1", "projectId": "p1", "prompt": "cpu"})
        assert r.status_code == 200 and r.json()["success"], r.text
        vid = r.json()["versionId"]
        usage = ApiClient(client, d).get("/usage", params={"userId": "u1"}).json()["usage"]
        # the build ran past the plan's 0.01 CPU seconds and was not stopped; the next one is refused
        again = ApiClient(client, d).post("/build-preview-for-new-project",
                                          {"userId": "u1", "projectId": "p2", "prompt": "cpu"})
        assert again.status_code == 429 and again.json()["error"]["quota"] == "build_cpu_seconds"
        assert again.json()["error"]["used"] == usage["buildCpuSeconds"]
    meter = BuildUsage.get_by_id(vid)
    assert len(seen) >= 2  # pnpm install and pnpm build, each in the sandbox
    assert meter.finished and not meter.pages_deployment
    assert meter.cpu_seconds == pytest.approx(sum(res.cpu_seconds for res in seen), rel=1e-9)
    assert meter.cpu_seconds > 0.1
    assert usage["buildCpuSeconds"] == round(meter.cpu_seconds, 3) and usage["builds"] == 1
    # the build log's per-step figures (one decimal) add up to the same
    logged = [float(x) for x in re.findall(r", ([0-9.]+)s cpu,", d.rt.layout.log_path(vid).read_text())]
    assert len(logged) == len(seen) and sum(logged) == pytest.approx(meter.cpu_seconds, abs=0.05 * len(seen))
    zip_path = d.rt.layout.local_object(d.rt.layout.artifact_key("u1", "p1", vid))
    assert meter.stored_bytes == zip_path.stat().st_size > 0
    # the gauge, moved on each store, equals a recount of the user's objects (the zip and the recovery pack)
    recount = quotas.refresh_storage(d.rt.layout.objects, "u1")
    assert usage["storageBytes"] == recount > meter.stored_bytes
