"""Daemon request -> deployed vs a shell's `pnpm install && pnpm build`, same project, same store state, one run.

Prints, as ratios against baselines measured in this same run:
  cold store:  daemon / shell            (target <= 1.03)
  warm store:  daemon / shell            (target <= 1.03)
  rebuild with unchanged dependencies / first build (warm)   (target <= 0.40)
  time to live of a rebuild under [build] checks = "record" vs "fail" (two daemons, interleaved)
  the median `timings` breakdown the daemon recorded (where the time goes)
  enqueue -> build start p50 of the real Huey queue          (target <= 100 ms)
Run: .venv/bin/python bench/pipeline_vs_shell.py [--warm-runs N] [--cold-runs N] [--policy-runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.cli.client import SheenAuth  # noqa: E402
from daemon.generators import GenerationRequest, make_generator  # noqa: E402
from daemon.project import toolchain  # noqa: E402

SECRET = "bench-secret"
PROMPT = "A bakery landing page with a menu, opening hours and a contact form"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def project_files() -> dict[str, str]:
    """The exact files the daemon builds for PROMPT (template generator + the daemon's install policy)."""
    gen = make_generator("template")
    files = dict(gen.generate(GenerationRequest(prompt=PROMPT), lambda _l: None).contract.files)
    files["pnpm-workspace.yaml"] = toolchain.workspace_yaml(["esbuild", "@tailwindcss/oxide"])
    return files


def shell_build(files: dict[str, str], store: Path, cache: Path, work: Path) -> float:
    """What an operator would type: pnpm install && pnpm build, in a fresh directory."""
    for rel, text in files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    tc = toolchain.resolve()
    env = {"PATH": tc.path_env, "HOME": str(work.parent), "XDG_CACHE_HOME": str(cache), "CI": "true"}
    cmd = f"'{tc.pnpm}' install --store-dir '{store}' && '{tc.pnpm}' build"
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", cmd], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


class Daemon:
    def __init__(self, root: Path, checks: str = "record") -> None:
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        cfg = root / "previewd.toml"
        # The store stays at its default place inside the data dir (as on a droplet): the install's view binds
        # the data dir as one mount, so pnpm hard-links packages from the store (the isolation keeps that).
        cfg.write_text(f'[server]\nport = {self.port}\n[paths]\ndata_dir = "{root / "data"}"\n'
                       f'[build]\naudit = "warn"\nchecks = "{checks}"\n[render]\nenabled = false\n'
                       # More warm runs than a user's hourly cap on new projects allows.
                       '[rate_limits]\nnew_projects_per_user_per_hour = 1000\n'
                       + os.environ.get("BENCH_EXTRA_TOML", "").replace("|", "\n"))
        env = {**os.environ, "PREVIEWD_CONFIG": str(cfg), "PREVIEWD_HMAC_SECRET": SECRET}
        self.built: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve"], env=env, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=900, trust_env=False,
                                 auth=SheenAuth(SECRET))  # every request v2-signed
        for _ in range(300):
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit("daemon did not start")

    def build(self, project: str, prompt: str, rebuild: bool = False) -> float:
        """Request -> deployed (the answer carries the live preview), in seconds."""
        return self.build_v(project, prompt, rebuild)[0]

    def build_v(self, project: str, prompt: str, rebuild: bool = False) -> tuple[float, str]:
        body = json.dumps({"userId": "bench", "projectId": project, "prompt": prompt}).encode()
        path = "/rebuild-preview" if rebuild else "/build-preview-for-new-project"
        t0 = time.perf_counter()
        r = self.http.post(path, content=body, headers={"content-type": "application/json"})
        elapsed = time.perf_counter() - t0
        data = r.json()
        if not data.get("success"):
            raise SystemExit(f"daemon build failed: {data}")
        self.built.append(str(data.get("versionId")))
        return elapsed, str(data.get("versionId"))

    def timings(self, version_id: str) -> dict[str, int]:
        """The version's recorded step breakdown (after its checks ended)."""
        v: dict[str, Any] = {}
        for _ in range(150):  # checks recorded after the answer (checks = "record") land within seconds
            v = self.http.get(f"/versions/{version_id}").json()
            if v.get("checks") is not None:
                break
            time.sleep(0.2)
        return dict(v.get("timings") or {}, total=v.get("buildDurationMs") or 0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def queue_latency(samples: int = 30) -> list[float]:
    """enqueue -> the worker calling the build function, on the real Huey consumer, queue idle between samples."""
    from daemon.intake.queue import BuildQueue

    out: list[float] = []
    done = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        q: BuildQueue

        def run(_vid: str) -> None:
            out.append(q.started_at[_vid] - q.enqueued_at[_vid])
            done.set()

        q = BuildQueue(Path(tmp) / "queue.db", run)
        q.start()
        try:
            for i in range(samples):
                done.clear()
                time.sleep(0.2)  # idle, so the worker is in its polling sleep
                q.enqueue(f"v{i}")
                done.wait(10)
        finally:
            q.stop()
    return out


def _median_timings(d: Daemon, ids: list[str]) -> str:
    rows = [d.timings(v) for v in ids]
    keys = ["generate", "install", "checks", "bundle", "deploy", "render", "total"]
    parts = []
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        if vals:
            parts.append(f"{k} {statistics.median(vals) / 1000:.2f}s")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm-runs", type=int, default=3)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--policy-runs", type=int, default=3)
    ap.add_argument("--checks", default="record", choices=("record", "fail", "off"),
                    help="[build] checks of the main daemon (off: the build script runs as written, as in the shell)")
    args = ap.parse_args()
    files = project_files()
    root = Path(tempfile.mkdtemp(prefix="previewd-bench-"))
    d: Daemon | None = None
    others: dict[str, Daemon] = {}

    def shell_cold_run(i: int) -> float:
        return shell_build(files, root / f"cs-store-{i}", root / f"cs-cache-{i}", root / f"cs-{i}" / "app")

    try:
        # cold: empty stores and metadata caches on both sides, in alternating order (registry fetches vary
        # by +-20% run to run, and the first fetch of a tarball warms the registry's own caches).
        shell_colds: list[float] = []
        daemon_colds: list[float] = []
        cold_ids: list[str] = []
        for i in range(args.cold_runs):
            if i % 2:
                shell_colds.append(shell_cold_run(i))
            if d is not None:
                d.stop()
            d = Daemon(root / f"dc-{i}", checks=args.checks)
            t, vid = d.build_v("cold", PROMPT)
            daemon_colds.append(t)
            cold_ids = [vid]
            if not i % 2:
                shell_colds.append(shell_cold_run(i))
        assert d is not None
        cold_timings = _median_timings(d, cold_ids)
        cold_rebuild = d.build("cold", "Change the headline to Fresh bread", rebuild=True)
        daemon_cold_b = daemon_colds[-1]
        shell_cold, daemon_cold = statistics.median(shell_colds), statistics.median(daemon_colds)
        # warm: the stores the last cold runs filled, new project directories
        last = args.cold_runs - 1
        shell_warm: list[float] = []
        daemon_warm: list[float] = []
        rebuilds: list[float] = []
        first_ids: list[str] = []
        rebuild_ids: list[str] = []
        for i in range(args.warm_runs):  # interleaved so machine noise hits both alike
            shell_warm.append(shell_build(files, root / f"cs-store-{last}", root / f"cs-cache-{last}",
                                          root / f"shell-{i + 1}" / "app"))
            t, vid = d.build_v(f"warm{i}", PROMPT)
            daemon_warm.append(t)
            first_ids.append(vid)
            t, vid = d.build_v(f"warm{i}", f"Change the headline to Fresh bread {i}", rebuild=True)
            rebuilds.append(t)
            rebuild_ids.append(vid)
        warm_timings, rebuild_timings = _median_timings(d, first_ids), _median_timings(d, rebuild_ids)
        # time to live of a rebuild under each checks policy: one daemon per policy (off = the script as written,
        # the type check before the bundle), their rebuilds interleaved
        ttl: dict[str, list[float]] = {"record": [], "fail": [], "off": []}
        if args.policy_runs and args.checks == "record":
            policies = {"record": d}
            for name in ("fail", "off"):
                others[name] = policies[name] = Daemon(root / f"policy-{name}", checks=name)
            for x in policies.values():
                x.build("pol", PROMPT)
            for i in range(args.policy_runs):
                for name, x in policies.items():
                    ttl[name].append(x.build("pol", f"Change the headline to Warm rolls {i}", rebuild=True))
    finally:
        for x in (d, *others.values()):
            if x is not None:
                x.stop()
        shutil.rmtree(root, ignore_errors=True)
    lat = queue_latency()
    sw, dw, rb = statistics.median(shell_warm), statistics.median(daemon_warm), statistics.median(rebuilds)
    print(f"cold store : shell {shell_cold:6.2f}s  daemon {daemon_cold:6.2f}s  ratio {daemon_cold / shell_cold:.3f}"
          f"  (target <= 1.03, median of {args.cold_runs})")
    print(f"warm store : shell {sw:6.2f}s  daemon {dw:6.2f}s  ratio {dw / sw:.3f}  (target <= 1.03, median of "
          f"{args.warm_runs})")
    print(f"rebuild, deps unchanged / first build, warm store: {rb:.2f}s / {dw:.2f}s = {rb / dw:.3f}  "
          "(target <= 0.40)")
    print(f"rebuild, deps unchanged / first build, cold store: {cold_rebuild:.2f}s / {daemon_cold_b:.2f}s = "
          f"{cold_rebuild / daemon_cold_b:.3f}")
    if ttl["record"]:
        rm, fm, om = (statistics.median(ttl[k]) for k in ("record", "fail", "off"))
        print(f"time to live, rebuild: checks=record {rm:.2f}s  fail {fm:.2f}s  off (as written) {om:.2f}s  "
              f"record/fail {rm / fm:.3f}  record/off {rm / om:.3f}  fail/off {fm / om:.3f}"
              f"  (median of {len(ttl['record'])})")
    print(f"timings, cold first build : {cold_timings}")
    print(f"timings, warm first build : {warm_timings}")
    print(f"timings, rebuild          : {rebuild_timings}")
    p50 = statistics.median(lat) * 1000
    print(f"enqueue -> build start: p50 {p50:.1f} ms, max {max(lat) * 1000:.1f} ms over {len(lat)}  "
          "(target p50 <= 100 ms)")


if __name__ == "__main__":
    main()
