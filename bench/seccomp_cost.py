"""Benchmark: the syscall filter's cost (sandbox.seccomp), the same steps with and without it in one run.

Each workload runs in the build view (bubblewrap, no network) with `syscall_filter=True` and `False`, alternated
(ABBA order per pair of rounds), and prints the median of the per-round ratios filtered / unfiltered:
  node: a syscall-heavy script (stat, open/read/close, spawn, a worker thread)   target <= 1.03
  vite: `vite build` of the template's project (esbuild is Go: clone, futex, mmap)   target <= 1.03
  ioctl: a Python loop of ioctl(FIONREAD), a call the filter reads the arguments of, so the program runs on
         every call (the worst case; everything but clone, unshare, ioctl, socket and personality is allowed
         from the kernel's per-syscall cache without running it)
Run: .venv/bin/python bench/seccomp_cost.py [--rounds N] [--only node|vite|ioctl]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sandbox  # noqa: E402
from daemon.generators import GenerationRequest, make_generator  # noqa: E402
from daemon.project import toolchain  # noqa: E402
from sandbox.fsview import Mount  # noqa: E402

NODE_SCRIPT = r"""
const fs = require('fs'), cp = require('child_process'), {Worker} = require('worker_threads');
fs.mkdirSync('heavy', {recursive: true});
for (let i = 0; i < 200; i++) fs.writeFileSync(`heavy/f${i}.txt`, 'x'.repeat(512));
let n = 0;
for (let r = 0; r < 150; r++) for (let i = 0; i < 200; i++) {
  n += fs.statSync(`heavy/f${i}.txt`).size;
  const fd = fs.openSync(`heavy/f${i}.txt`, 'r'); n += fs.readSync(fd, Buffer.alloc(512)); fs.closeSync(fd);
}
for (let i = 0; i < 40; i++) cp.spawnSync('true');
new Worker('require("worker_threads").parentPort.postMessage(1)', {eval: true})
  .on('message', () => console.log('done', n));
"""
BATCH, BATCHES = 10_000, 40
# ioctl: the program runs on every call; getppid: allowed from the kernel's cache. Per call, in ns: the fastest of
# BATCHES batches (the least disturbed by other work on the machine), the Python loop included.
IOCTL_LOOP = f"""import fcntl, os, termios, time
r, w = os.pipe()
b = bytearray(4)
def best(call):
    out = []
    for _ in range({BATCHES}):
        t = time.perf_counter()
        for _ in range({BATCH}):
            call()
        out.append((time.perf_counter() - t) * 1e9 / {BATCH})
    return min(out)
print('inner', best(lambda: fcntl.ioctl(r, termios.FIONREAD, b)), best(os.getppid), best(lambda: None))
"""


def install(work: Path, store: Path) -> toolchain.Toolchain:
    """The template's project, installed once with the pinned pnpm."""
    gen = make_generator("template")
    files = dict(gen.generate(GenerationRequest(prompt="A bakery"), lambda _l: None).contract.files)
    files["pnpm-workspace.yaml"] = toolchain.workspace_yaml(["esbuild", "@tailwindcss/oxide"])
    for rel, text in files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    tc = toolchain.resolve()
    env = {"PATH": tc.path_env, "HOME": str(work.parent), "CI": "true"}
    subprocess.run([tc.pnpm, "install", "--store-dir", str(store)], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return tc


def timed(argv: list[str], work: Path, env: dict[str, str], filt: bool) -> tuple[float, float, list[float]]:
    """(wall s, CPU s of the whole tree, the figures a workload printed on its `inner` line)"""
    view = sandbox.FsView(mounts=(Mount("rw", work),))
    lines: list[str] = []
    t0 = time.perf_counter()
    res = sandbox.run(argv, work, env, sandbox.Limits(wall_seconds=300, cpu_seconds=300), on_line=lines.append,
                      network=False, view=view, syscall_filter=filt)
    wall = time.perf_counter() - t0
    if res.reason != "ok":
        raise SystemExit(f"{argv[:2]} (filter {filt}): {res.detail}\n" + "\n".join(lines[-20:]))
    inner = [float(x) for ln in lines if ln.startswith("inner ") for x in ln.split()[1:]]
    return wall, res.cpu_seconds, inner


def main() -> None:
    """Run the alternated rounds and print one ratio per workload."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--only", choices=["node", "vite", "ioctl"], help="one workload (default: all three)")
    args = ap.parse_args()
    av = sandbox.probe()["features"]["syscall_filter"]
    if not av["on"]:
        raise SystemExit(f"the syscall filter is not available here: {av['why']}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        tc = install(work, Path(tmp) / "store")
        env = sandbox.safe_env({"PATH": tc.path_env, "CI": "true"}, home=Path(tmp))
        workloads = {
            "node": [tc.node, "-e", NODE_SCRIPT],
            "vite": [tc.node, "node_modules/vite/bin/vite.js", "build", "--logLevel", "error"],
            "ioctl": ["/usr/bin/python3", "-c", IOCTL_LOOP],
        }
        if args.only:
            workloads = {args.only: workloads[args.only]}
        times: dict[str, dict[bool, list[tuple[float, float, list[float]]]]] = {
            k: {True: [], False: []} for k in workloads}
        for name, argv in workloads.items():
            timed(argv, work, env, True)  # warm the page cache and Vite's own caches once
            for r in range(args.rounds):
                for filt in ((True, False) if r % 2 == 0 else (False, True)):
                    times[name][filt].append(timed(argv, work, env, filt))
    print(f"{args.rounds} alternated rounds per workload; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs")
    for name, t in times.items():
        for i, what in ((0, "wall"), (1, "CPU")):
            on, off = [x[i] for x in t[True]], [x[i] for x in t[False]]
            ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
            print(f"{name:6s} {what:4s} filter/no filter {ratio:.3f} (median of rounds; medians "
                  f"{statistics.median(on):.3f} s vs {statistics.median(off):.3f} s; mins {min(on) / min(off):.3f})")
    if "ioctl" not in times:
        return
    ioctl_on = [statistics.median(x[2][k] for x in times["ioctl"][True]) for k in (0, 1, 2)]
    ioctl_off = [statistics.median(x[2][k] for x in times["ioctl"][False]) for k in (0, 1, 2)]
    loop = statistics.median(x[2][2] for x in times["ioctl"][False])
    print(f"per call (fastest batch, median of rounds; the Python loop's own {loop:.0f} ns included): ioctl (program "
          f"runs) {ioctl_on[0]:.0f} ns vs {ioctl_off[0]:.0f} ns ({ioctl_on[0] / ioctl_off[0]:.3f}x, "
          f"{ioctl_on[0] - ioctl_off[0]:+.0f} ns); getppid (kernel's cache) {ioctl_on[1]:.0f} ns vs "
          f"{ioctl_off[1]:.0f} ns ({ioctl_on[1] / ioctl_off[1]:.3f}x, {ioctl_on[1] - ioctl_off[1]:+.0f} ns)")


if __name__ == "__main__":
    main()
