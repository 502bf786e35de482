"""What "only the daemon configures a networked step" costs, on the template project (the daemon's install flags):

  purge      netconfig.purge of the workspace before the install (every directory walked, node_modules' cache dirs
             entered, the daemon's files compared, sources reclaimed), against the install it precedes
  pins       a warm `pnpm install` (node_modules present, nothing changed) with the network settings pinned on the
             command line, against the same install without them

Prints medians and each as a ratio against its baseline measured in the same run.
Run: .venv/bin/python bench/install_config.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.generators import GenerationRequest, make_generator  # noqa: E402
from daemon.project import isolation, netconfig, toolchain  # noqa: E402
from daemon.project.workspace import materialize  # noqa: E402

STORE = Path("/tmp/previewd-test-pnpm-store")  # the suite's shared store: warm after any template test


def _install(argv: list[str], work: Path, home: Path) -> float:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache")}
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=work, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    tc = toolchain.resolve()
    files = dict(make_generator("template").generate(GenerationRequest(prompt="A bakery"), lambda _l: None)
                 .contract.files)
    files["pnpm-workspace.yaml"] = toolchain.workspace_yaml([])
    tmp = Path(tempfile.mkdtemp(prefix="previewd-bench-config-"))
    try:
        work, home = tmp / "work", tmp / "home"
        home.mkdir()
        materialize(work, files)
        cache = home / "cache" / "pnpm"
        pinned = toolchain.install_argv(tc, STORE, "", cache, (".",))
        bare = pinned[:pinned.index("--registry")]
        _install(pinned, work, home)  # node_modules and the lockfile in place: every run after is warm
        for d in isolation.CODE_CACHE_DIRS:
            (work / "node_modules" / d).mkdir(exist_ok=True)
        own = {k: files[k] for k in ("package.json", "pnpm-workspace.yaml")}
        t_pinned, t_bare, t_purge = [], [], []
        for _ in range(runs):
            t_bare.append(_install(bare, work, home))
            t_pinned.append(_install(pinned, work, home))
            t0 = time.perf_counter()
            netconfig.purge(work, own, cache_dirs=isolation.CODE_CACHE_DIRS, reclaim=True)
            t_purge.append(time.perf_counter() - t0)
        install, pins, purge = (statistics.median(x) for x in (t_bare, t_pinned, t_purge))
        print(f"template workspace: {len(files)} files; {runs} runs, medians")
        print(f"warm install without pins (baseline): {install * 1000:.0f} ms")
        print(f"warm install with pins:              {pins * 1000:.0f} ms  ratio {pins / install:.3f}")
        print(f"purge before it:                     {purge * 1000:.2f} ms  ratio {purge / install:.4f} of the install")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
