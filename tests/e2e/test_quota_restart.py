"""A SIGKILL mid-month, mid-build (issue 19): after the restart the month's usage is what it was, the killed build
counts once (its finished steps' CPU kept), and the builds quota still holds."""

from __future__ import annotations

import signal
from typing import Any

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import add_config, wait_until

# The install is quick and ends; the build spends CPU and then hangs until the daemon is killed.
SLOW = '''
build = "node -e 'let x = 0; for (let i = 0; i < 2e7; i++) x += i' && sleep 120"
files = {"index.html": "<h1>slow</h1>"}
'''
PLANS = '\n[quotas]\ndefault_plan = "free"\n[plans.free]\nbuilds = 2\n'


def test_sigkill_mid_build_keeps_the_months_usage(live_factory: Any) -> None:
    d = live_factory("[server]\nshutdown_grace_s = 0\n")  # teardown stops the hanging build at once
    add_config(d.config, generator_config(write_generator(d.tmp, SLOW)) + PLANS)
    d.start()
    r = d.post("/build-preview-for-new-project", {"userId": "u1", "projectId": "p1", "prompt": "x"}, wait="false")
    assert r.status_code == 202, r.text
    vid = r.json()["versionId"]

    def usage() -> dict[str, Any]:
        body: dict[str, Any] = d.get("/usage", params={"userId": "u1"}).json()["usage"]
        return body

    # the install step ended (its CPU is metered) and `pnpm build` is running
    wait_until(lambda: usage()["buildCpuSeconds"] > 0 and "$ pnpm" in d.get(f"/versions/{vid}/log").text
               and d.get(f"/versions/{vid}/log").text.count("$ ") >= 2, 120, interval=0.2, what="build step running")
    before = usage()
    assert (before["builds"], before["buildsUnfinished"]) == (1, 1)
    d.stop(signal.SIGKILL)
    d.start()
    v = d.wait_status(vid, ("failed",), timeout=30)
    assert v["failureReason"] == "interrupted"
    after = usage()
    assert (after["builds"], after["buildsUnfinished"]) == (1, 0)
    assert after["buildCpuSeconds"] == before["buildCpuSeconds"]  # the finished steps' CPU, counted once
    assert d.post("/build-preview-for-new-project", {"userId": "u1", "projectId": "p2", "prompt": "x"},
                  wait="false").status_code == 202
    r = d.post("/build-preview-for-new-project", {"userId": "u1", "projectId": "p3", "prompt": "x"}, wait="false")
    assert r.status_code == 429 and (r.json()["error"]["used"], r.json()["error"]["limit"]) == (2, 2)
