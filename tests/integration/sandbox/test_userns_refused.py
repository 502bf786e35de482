"""An unprivileged daemon whose bubblewrap is refused its user namespace, for real: a user namespace of the test's
own, where `user.max_user_namespaces = 0` (the host's setting is untouched) and the daemon's uid is 1000, runs the
real bwrap probe. Doctor names the sysctl and its fix, and a build is refused with sandbox_unavailable saying the
same (issue 28)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UID = 1000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes another process's uid_map: needs root")

# argv: the command to run as uid 1000 in a new user namespace whose max_user_namespaces is 0. uid 1000 there is
# the host's root (so the checkout and the venv stay readable) but holds no capability; uid 0 there is an unused
# host uid, only to set the limit.
HARNESS = f'''
import ctypes, os, sys
go_r, go_w = os.pipe()
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
        os._exit(70)
    os.write(ready_w, b"x")
    os.read(go_r, 1)
    os.setgid(0)
    os.setuid(0)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0\\n")
    os.setgroups([])
    os.setgid({UID})
    os.setuid({UID})
    os.execv(sys.argv[1], sys.argv[1:])
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{{pid}}/{{name}}", "w") as f:
        f.write("0 1999999 1\\n{UID} 0 1\\n")
os.write(go_w, b"x")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
'''

CHECK = '''
import json, os, sys
from pathlib import Path
from daemon.cli.previewd import doctor_report
from daemon.project.failures import BuildFailed
from daemon.steps.prepare import Prepare
from tests.support import make_config

cfg = make_config(Path(sys.argv[1]))
iso = doctor_report(cfg)["isolation"]
try:
    Prepare().run(type("Ctx", (), {"rt": type("Rt", (), {"cfg": cfg})})())
    refused = None
except BuildFailed as exc:
    refused = {"reason": exc.reason, "message": exc.message}
print(json.dumps({"euid": os.geteuid(), "isolation": iso, "refused": refused}))
'''


def test_a_refused_user_namespace_is_named_with_its_fix_and_builds_fail_closed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", HARNESS, sys.executable, "-c", CHECK, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    iso = out["isolation"]
    assert out["euid"] == UID and (iso["confined"], iso["builds_allowed"]) == (False, False)
    assert "ENOSPC" in iso["why"]  # bwrap's own words, from the real probe
    assert f"runs as uid {UID}, not root" in iso["why"] and "user.max_user_namespaces = 0" in iso["why"]
    assert "`sysctl -w user.max_user_namespaces=15000`" in iso["fix"]
    assert "/etc/sysctl.d/60-previewd-userns.conf" in iso["fix"]
    assert [r["sysctl"] for r in iso["user_namespaces_restricted_by"]] == ["user.max_user_namespaces"]
    assert out["refused"]["reason"] == "sandbox_unavailable"
    assert iso["why"] in out["refused"]["message"] and iso["fix"] in out["refused"]["message"]
    assert iso["ERROR"] == f"builds will be refused (sandbox_unavailable): {iso['why']}; fix: {iso['fix']}"
