"""The pure-v1 path of the cgroup_v1 layer (cpuacct budget, freezer kill), used where no cgroup2 tree exists."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from sandbox import Limits
from sandbox.layers import cgfs
from sandbox.layers.cgroup_v1 import CgroupV1Layer
from sandbox.probe import launcher_argv
from tests.integration.sandbox.sandbox_support import HOST_LAYERS, PY

BURN = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\nwhile True: pass\n"


@pytest.mark.parametrize("layer_name", [n for n in HOST_LAYERS if n == "cgroup_v1"])
def test_v1_layer_without_the_unified_tree(layer_name: str) -> None:
    lay = CgroupV1Layer(use_unified=False)
    plan = lay.prepare(Limits(memory_bytes=128 * 2**20, pids=16))
    assert lay.uni is None and lay.cpuacct is not None
    r, w = os.pipe()
    spec = {"status_fd": w, "supervisor_pid": os.getpid(), "cgroup_procs": plan.cgroup_procs}
    proc = subprocess.Popen(launcher_argv(spec, [PY, "-c", BURN]), pass_fds=(w,), start_new_session=True)
    os.close(w)
    try:
        assert os.read(r, 4096) == b""  # exec succeeded
        lay.attach(proc.pid)
        deadline = time.monotonic() + 30
        usage = lay.sample()
        while (usage.cpu_seconds < 0.5 or usage.tasks < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
            usage = lay.sample()
        assert usage.cpu_seconds >= 0.5 and usage.tasks >= 2, usage
        assert usage.memory_bytes > 0
        lay.kill()
        assert lay.mem is not None and cgfs.procs(lay.mem) == []
        proc.wait(timeout=10)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        made = list(lay._made)
        lay.cleanup()
    assert not any(cg.exists() for cg in made)
