"""The per-process RLIMIT_CPU backstop: the step's budget after the launcher's own start-up, SIGXCPU before SIGKILL.

Found in the cgroup v2 guest (tests/guest, TCG): the launcher's interpreter start-up took about a second of the
process's CPU clock before the step began, so the backstop's SIGKILL (soft == hard) ended a step at 0.99 s of its
1 s budget, reported as exit_nonzero instead of cpu_limit.
"""

from __future__ import annotations

import os
import subprocess

from sandbox.probe import launcher_argv

PY = "/usr/bin/python3"


def _limits_seen_by_the_step(cpu: int, burn_first: float) -> tuple[int, int]:
    r, w = os.pipe()
    spec = {"status_fd": w, "supervisor_pid": os.getpid(), "rlimits": {"CPU": cpu}}
    code = "import resource; print(*resource.getrlimit(resource.RLIMIT_CPU))"
    argv = launcher_argv(spec, [PY, "-c", code])
    # Burn CPU in the launcher's process before it execs, as a slow interpreter start-up does.
    pre = f"import time\nt=time.process_time()\nwhile time.process_time()-t<{burn_first}: pass\n"
    wrapper = [argv[0], "-c", pre + "import os,sys; os.execv(sys.argv[1], sys.argv[1:])", *argv]
    out = subprocess.run(wrapper, pass_fds=(w,), capture_output=True, text=True, timeout=60, env={})
    os.close(w)
    os.close(r)
    assert out.returncode == 0, out.stderr
    soft, hard = (int(x) for x in out.stdout.split())
    return soft, hard


def test_backstop_leaves_a_second_between_sigxcpu_and_sigkill() -> None:
    soft, hard = _limits_seen_by_the_step(cpu=3, burn_first=0.0)
    assert soft >= 3
    assert hard == soft + 1


def test_backstop_adds_the_cpu_the_launcher_already_used() -> None:
    soft, _ = _limits_seen_by_the_step(cpu=3, burn_first=1.2)
    assert soft >= 3 + 2  # 1.2 s already on the clock, rounded up
