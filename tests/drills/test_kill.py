"""SIGKILL of the daemon mid-install, mid-build and mid-deploy, then a restart: nothing stuck, orphaned or lost."""

from __future__ import annotations

import pytest

from tests.drills.conftest import Drills
from tests.drills.support import leftover_processes, other_pids, wait_no_leftovers

# (prompt, the log text that says the daemon is inside that phase)
PHASES = {
    "install": ("slowinstall:60 kill me while installing", "sleep 60"),
    "build": ("slowbuild:60 kill me while building", "sleep 60"),
    # A 40 MiB output: zipping it into the artifact and copying it into the previews takes a while.
    "deploy": ("bigout:40 kill me while deploying", "output dist/"),
}


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_sigkill_then_restart(drills: Drills, phase: str) -> None:
    prompt, cue = PHASES[phase]
    d = drills.daemon()
    first = d.build("u", "p", "a first good version")
    assert first["success"] is True, first
    v = d.rebuild("u", "p", prompt, wait=False)
    d.wait_log(v["versionId"], cue)
    d.kill()
    d.start()
    # The step's process tree, left running by the dead daemon, is gone once the new one is up.
    assert wait_no_leftovers(drills.tmp, timeout=5, exclude=other_pids() | {d.pid}) == [], \
        leftover_processes(drills.tmp)
    row = d.get(f"/versions/{v['versionId']}").json()
    if row["status"] == "deployed":  # the deploy finished just before the kill landed
        assert phase == "deploy", row
    else:
        assert row["status"] == "failed" and row["failureReason"] == "interrupted", row
        assert "daemon stopped" in row["failureMessage"]
    # The live version is still the first one (or the new one when it made it), and the project rebuilds.
    ptr = d.get("/projects/u/p/preview").json()
    assert ptr["latestVersionId"] in (first["versionId"], v["versionId"])
    drills.finish(d, next_build=lambda: d.rebuild("u", "p", "after the restart"))
