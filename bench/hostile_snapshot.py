"""Benchmark: what a hostile project's source snapshot costs the daemon, file set vs workspace walk.

Usage: .venv/bin/python bench/hostile_snapshot.py [--files 4] [--mib 256]

A project's postinstall left `--files` sparse files of `--mib` MiB each in its workspace (a few KiB on disk, so
every disk cap passes). Baseline, measured in this run: the workspace walk the build used before (`snapshot`,
with no budget), which reads every byte. Now: `snapshot_files` of the contract's file set, which never looks at the
workspace. Each runs in a fresh interpreter; prints its peak resident growth and seconds, and the time ratio.
(Before the fix the walk also held every byte: the e2e test_isolation_sparse measured the daemon at 693 MiB
VmHWM for 1 GiB of sparse files, 118 MiB with the file-set snapshot.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CONTRACT = {"package.json": '{"name":"p","private":true,"scripts":{"build":"vite build"}}',
            "index.html": "<h1>hi</h1>", "src/main.ts": "console.log('hi')\n" * 200,
            "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}

CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from daemon.history import ProjectRepo
from daemon.history.budget import Budget
repo = ProjectRepo.open_or_init(Path(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if sys.argv[1] == "walk":
    repo.snapshot(Path(sys.argv[3]), "v1", None, "v1", budget=Budget(max_bytes=1 << 40, max_object_bytes=1 << 40,
                                                                     max_seconds=1e9))
else:
    files = {p: (Path(sys.argv[3]) / p).read_text() for p in json.loads(sys.argv[5])}
    repo.snapshot_files(files, "v1", None, "v1")
print(json.dumps({"mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                  "s": time.perf_counter() - t}))
"""


RESTORE = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from daemon.history import HistoryError, ProjectRepo
from daemon.history.budget import Budget
data = Path(sys.argv[2]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
unbounded = Budget(max_bytes=1 << 40, max_object_bytes=1 << 40, max_objects=1 << 40, max_seconds=1e9)
try:
    ProjectRepo.restore(Path(sys.argv[3]), [("p.pack.zip", data)], **({"budget": unbounded}
                                                                     if sys.argv[1] == "unbounded" else {}))
    outcome = "restored"
except HistoryError as exc:
    outcome = exc.code
print(json.dumps({"mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                  "s": time.perf_counter() - t, "outcome": outcome}))
"""

PACK = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from dulwich.repo import Repo
from daemon.history.packing import export_zip
from tests.support.crafted_history import plant_version
repo = Path(sys.argv[1])
from daemon.history import ProjectRepo
ProjectRepo.open_or_init(repo)
plant_version(repo, "v1", {"index.html": "x"}, {"big.bin": int(sys.argv[4]) << 20})
with Repo(str(repo)) as r:
    top = r.refs[b"refs/tags/v1"]
    Path(sys.argv[2]).write_bytes(export_zip(r.object_store, None, top, {"v1": top},
                                             {"base": None, "top": "v1", "base_commit": None,
                                              "top_commit": top.decode()}))
"""


def restore_figures(tmp: Path, mib: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """A recovery pack holding one `mib` MiB blob of zeros, restored without a budget and with the default one."""
    pack = tmp / "p.pack.zip"
    subprocess.run([sys.executable, "-c", PACK, str(tmp / "src.git"), str(pack), str(ROOT), str(mib)], check=True)
    out = []
    for mode in ("unbounded", "budget"):
        res = subprocess.run([sys.executable, "-c", RESTORE, mode, str(pack), str(tmp / f"r-{mode}.git"),
                              str(ROOT)], capture_output=True, text=True, check=True).stdout
        out.append(json.loads(res))
    return pack.stat().st_size, out[0], out[1]


def run(mode: str, tmp: Path, ws: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(tmp / f"{mode}.git"), str(ws), str(ROOT),
                          json.dumps(sorted(CONTRACT))], capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ws = tmp / "work"
        for path, text in CONTRACT.items():
            (ws / path).parent.mkdir(parents=True, exist_ok=True)
            (ws / path).write_text(text)
        for i in range(args.files):
            with open(ws / f"big{i}.bin", "wb") as f:
                f.write(b"%08d" % i)
                f.truncate(args.mib * 2**20)
        walk = run("walk", tmp, ws)
        files = run("files", tmp, ws)
        size, unbounded, budget = restore_figures(tmp, args.mib)
    print(f"hostile workspace: {args.files} sparse files x {args.mib} MiB beside {len(CONTRACT)} contract files")
    print(f"baseline workspace walk: +{walk['mib']:.0f} MiB peak, {walk['s']:.2f} s")
    print(f"file-set snapshot:      +{files['mib']:.1f} MiB peak, {files['s']:.3f} s")
    # The walk streams big files now (history/trees.py), so its memory stays flat too; its time does not.
    print(f"ratio (file set / walk): time {files['s'] / max(walk['s'], 1e-6):.4f}")
    print(f"restore of a {size // 1024} KiB recovery pack holding {args.mib} MiB of zeros: without a budget "
          f"{unbounded['outcome']} in {unbounded['s']:.2f} s, +{unbounded['mib']:.0f} MiB peak; with the budget "
          f"{budget['outcome']} in {budget['s']:.3f} s, +{budget['mib']:.1f} MiB peak "
          f"(time {budget['s'] / max(unbounded['s'], 1e-6):.4f}x)")


if __name__ == "__main__":
    main()
