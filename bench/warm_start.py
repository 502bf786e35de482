"""Benchmark: the first build on a brand-new fleet droplet after its warm start, against a build on a droplet that is
already warm, with the cold-store first build beside them (issue 29; goal new/warm <= 1.10x).

Each round, on one Postgres, one moto bucket and the KV fake:
  cold  a droplet with its own empty store and metadata cache and no store cache (`warm_start = false`): its first
        build pays every tarball and metadata document to the registry;
  warm  the fleet's warm droplet (the first round's cold droplet, which published its packages) builds a new
        project: store and metadata cache already hold everything;
  new   a brand-new droplet (own empty store and metadata cache) joins: it warms from the bucket (timed apart,
        before it takes builds), then builds a new project.
Every build is a new project of the offline template (Vite + React + TypeScript + Tailwind), timed from the request
to the deployed answer; the install step's own time (`timings.install`) is shown beside it. Medians over rounds,
warm and new alternated so both see the same machine load.

Run: .venv/bin/python bench/warm_start.py [--rounds 3] [--app template|deps:a@1,b@2]
Needs Postgres at $PREVIEWD_TEST_PG_DSN (default 127.0.0.1:5432/test) and the npm registry; starts moto itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.drills.fleet_support import Fleet
from tests.drills.support import Drill
from tests.support import free_port, wait_until


def droplet(fleet: Fleet, name: str, app: str, *, warm_start: bool) -> Drill:
    """A started droplet with its own store and metadata cache (data dir), building `app`."""
    root = fleet.tmp / name
    root.mkdir(parents=True)
    gen = ""
    if app != "template":
        from tests.drills.support import GENERATOR
        (root / "gen.py").write_text(GENERATOR)
        gen = f'backend = "command"\ncommand = ["{sys.executable}", "{root / "gen.py"}"]\n'
    else:
        gen = 'backend = "template"\n'
    config = fleet.config(name).replace("[fleet]\n", f"[fleet]\nwarm_start = {'true' if warm_start else 'false'}\n")
    config += (f"[generator]\n{gen}[build]\naudit = \"off\"\n[render]\nenabled = false\n[sync]\ninterval_s = 0.1\n"
               f"[paths]\npnpm_store = \"{root / 'store'}\"\n")
    d = Drill(root, config)
    d.env = fleet.env
    d.start_timeout_s = 600
    fleet.droplets.append(d)
    return d.start()


def timed_build(d: Drill, project: str, app: str) -> tuple[float, float]:
    """Seconds from the request to the deployed answer, and the install step's seconds."""
    prompt = f"{app} {project}" if app != "template" else f"a landing page for {project}"
    t = time.perf_counter()
    r: dict[str, Any] = d.build("u", project, prompt)
    took = time.perf_counter() - t
    assert r.get("success") is True, r
    v = d.get(f"/versions/{r['versionId']}").json()
    install_ms = (v.get("timings") or {}).get("install") or 0
    return took, install_ms / 1000



def _med(xs: list[tuple[float, float]], k: int) -> float:
    return statistics.median(x[k] for x in xs)


def report(app: str, rounds: int, cold: list[tuple[float, float]], warm: list[tuple[float, float]],
           new: list[tuple[float, float]], warmups: list[float], imported: int) -> None:
    """The figures, printed before the bucket's thousands of objects are cleaned up."""
    base = _med(warm, 0)
    print(f"app: {app}, rounds: {rounds} (medians; request -> deployed, install step in brackets)")
    print(f"  warm droplet, new project     {base:6.2f} s  [{_med(warm, 1):5.2f} s]  1.00x (baseline)")
    print(f"  brand-new droplet after warm  {_med(new, 0):6.2f} s  [{_med(new, 1):5.2f} s]  "
          f"{_med(new, 0) / base:.2f}x  (goal <= 1.10x)")
    print(f"  cold store (no warm start)    {_med(cold, 0):6.2f} s  [{_med(cold, 1):5.2f} s]  "
          f"{_med(cold, 0) / base:.2f}x")
    print(f"  warm-up before taking builds  {statistics.median(warmups):6.2f} s ({imported} packages imported, "
          "verified, and the metadata of each asked of the registry)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--app", default="template", help="template, or deps:a@1,b@2 (the drill generator)")
    args = ap.parse_args()
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    new: list[tuple[float, float]] = []
    warmups: list[float] = []
    imported = 0
    try:
        with tempfile.TemporaryDirectory(prefix="warm-bench-") as tmp:
            fleet = Fleet(Path(tmp), f"http://127.0.0.1:{port}", ttl_s=5.0, release_idle_s=1.0)
            try:
                hot = droplet(fleet, "hot", args.app, warm_start=True)  # the fleet's warm droplet
                cold.append(timed_build(hot, "first", args.app))  # its first build is a cold one too
                t = time.perf_counter()
                wait_until(lambda: hot.get("/ops/fleet").json()["warmStart"]["publishPending"] == 0, 1800,
                           interval=1, what="the warm droplet publishing its packages")  # off the build's path
                published = hot.get("/ops/fleet").json()["warmStart"]["published"]
                print(f"  published {published} packages to the bucket in {time.perf_counter() - t:.1f} s "
                      "(after the build's answer)", flush=True)
                for i in range(args.rounds):
                    if i:
                        c = droplet(fleet, f"cold{i}", args.app, warm_start=False)
                        cold.append(timed_build(c, f"cold{i}", args.app))
                        c.stop()
                    n = droplet(fleet, f"new{i}", args.app, warm_start=True)  # returns once /healthz says warm
                    status = n.get("/ops/fleet").json().get("warmStart", {})
                    assert status.get("state") == "warm" and not status.get("refused"), status
                    warmups.append(float(status.get("seconds") or 0))
                    print(f"  warm-up of new{i}: {status}", flush=True)
                    imported = int(status.get("done") or 0)
                    new.append(timed_build(n, f"new{i}", args.app))
                    n.stop()
                    warm.append(timed_build(hot, f"warm{i}", args.app))
                report(args.app, args.rounds, cold, warm, new, warmups, imported)
            finally:
                fleet.close()
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
