"""Benchmark: the preview-pointer read against the same server's /healthz, and a burst of 100 build requests.

Usage: .venv/bin/python bench/load.py [--duration 5] [--rounds 3] [--connections 64] [--client auto|wrk|httpx]
                                      [--skip-read] [--skip-auth] [--skip-burst]

(a) Starts `previewd serve` on loopback on a temp data dir (render check off, generous caps), builds one tiny
    project, then alternates fixed-length phases of `GET /projects/u/p/preview` and `GET /healthz` (the
    framework's own ceiling) and prints requests/s, p50 and p99 of both and their ratio. The client is `wrk`
    (installed with apt-get when missing and possible) or, failing that, an async httpx client in a child
    process; the figure says which. Targets on a 2-core machine: >= 2,000 req/s, p99 <= 20 ms, >= 70% of /healthz.
(c) Signed request overhead: in-process, the cost of one v2 check (HMAC over method, path?query, timestamp and
    body, then the nonce written to state.db) next to the body-only and read-token checks; and in the daemon of
    (a), `GET /versions/{id}` signed (v2, a fresh signature per request) against the same read with a read token
    (no database write), as server CPU per request, req/s and p99, with /healthz as the baseline of the run.
(b) Starts a second daemon with the default rate caps and fires 100 concurrent build requests over 20 projects
    and 10 users (see tests/drills/burst.py), waits for every accepted build, and checks that the caps and
    dedup held exactly, no version was lost or duplicated, and the database and git repos are consistent.
No assertion on timing; (b) exits 1 when a correctness check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.drills import burst  # noqa: E402
from tests.drills.support import Drill, consistency_problems, drill_config  # noqa: E402

GENEROUS = """
[rate_limits]
per_ip_per_hour = 1000000
new_projects_per_user_per_hour = 1000000
rebuilds_per_project_per_hour = 1000000
"""


# -- clients ----------------------------------------------------------------------------------------------
def have_wrk() -> bool:
    """wrk on PATH, installing Debian's package once when we are root and apt-get exists."""
    if shutil.which("wrk"):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=300)
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def run_wrk(url: str, duration: float, connections: int, script: list[str] | None = None) -> dict[str, float]:
    """One wrk phase (one thread: the server gets the other core); requests/s, p50 and p99 in ms.
    `script`: a Lua script and its arguments (wrk's -s ... -- args)."""
    lua = ["-s", script[0]] if script else []
    extra = ["--", *script[1:]] if script else []
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", *lua, url, *extra],
                         capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    refusal = re.search(r"^first refusal: (.*)$", out, re.M)
    if refusal:
        print(f"  ({refusal.group(0)[:200]})")
    return {"rps": rps, "p50": p50, "p99": p99, "requests": total, "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "errors": 1.0 if errors else 0.0}


async def _httpx_phase(url: str, duration: float, connections: int, mode: str = "none") -> dict[str, float]:
    import httpx

    from daemon.cli.client import SheenAuth
    from tests.support import TEST_SECRET

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    lat: list[float] = []
    bad = 0
    auth = SheenAuth(TEST_SECRET) if mode == "v2" else None  # a fresh v2 signature for every request
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False, auth=auth) as client:
        for _ in range(connections):
            await client.get(url)
        stop_at = time.monotonic() + duration

        async def worker() -> None:
            nonlocal bad
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                r = await client.get(url)
                lat.append(time.perf_counter() - t0)
                bad += r.status_code != 200

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - t0
    lat.sort()
    return {"rps": len(lat) / elapsed, "requests": float(len(lat)), "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[int(len(lat) * 0.99)] * 1000,
            "non2xx": float(bad), "errors": 0.0}


def run_httpx(url: str, duration: float, connections: int, mode: str = "none") -> dict[str, float]:
    """One phase with the async httpx client in a child process (so it is not in this process's GIL);
    mode v2 signs every request."""
    out = subprocess.run([sys.executable, __file__, "--httpx-phase", url, str(duration), str(connections), mode],
                         capture_output=True, text=True, timeout=duration + 120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- (a) pointer read ----------------------------------------------------------------------------------------
def bench_read(args: argparse.Namespace) -> dict[str, Any]:
    use_wrk = args.client == "wrk" or (args.client == "auto" and have_wrk())
    if args.client == "wrk" and not have_wrk():
        raise SystemExit("wrk is not installed and could not be installed")
    phase = run_wrk if use_wrk else run_httpx
    tmp = Path(tempfile.mkdtemp(prefix="previewd-load-"))
    d = Drill(tmp, drill_config(tmp, GENEROUS, sync_interval_s=2.0)).start()
    try:
        built = d.build("u", "p", "pointer bench")
        pointer = f"{d.base}/projects/u/p/preview"
        health = f"{d.base}/healthz"
        assert d.get("/projects/u/p/preview").status_code == 200
        phase(health, 2, args.connections)  # warm up both paths
        phase(pointer, 2, args.connections)
        results: dict[str, list[dict[str, float]]] = {"pointer": [], "healthz": []}
        server = psutil.Process(d.pid)
        for i in range(args.rounds):
            order = [("healthz", health), ("pointer", pointer)]
            for name, url in order if i % 2 == 0 else order[::-1]:
                c0, w0 = sum(server.cpu_times()[:2]), time.monotonic()
                r = phase(url, args.duration, args.connections)
                cpu_s = sum(server.cpu_times()[:2]) - c0
                # Server CPU per request is steadier than req/s on a machine other work shares; the share of
                # a core it got says whether it was starved.
                r["cpu_us"] = cpu_s / max(1.0, r["requests"]) * 1e6
                r["core"] = cpu_s / (time.monotonic() - w0)
                results[name].append(r)
        rss = round(server.memory_info().rss / 2**20, 1)
        signed_reads = None if args.skip_auth else bench_signed_reads(args, d, server, str(built["versionId"]))
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    client = "wrk -t1" if use_wrk else "httpx.AsyncClient (child process)"
    summary: dict[str, Any] = {"client": client, "connections": args.connections, "rounds": args.rounds,
                               "duration_s": args.duration, "daemon_rss_mb": rss}
    print(f"(a) pointer read vs /healthz, client {client}, {args.connections} connections, "
          f"{args.rounds} x {args.duration:.0f} s per path, interleaved")
    for name, rs in results.items():
        rps = statistics.mean(r["rps"] for r in rs)
        p50 = statistics.median(r["p50"] for r in rs)
        p99 = statistics.median(r["p99"] for r in rs)
        bad = sum(r["non2xx"] + r["errors"] for r in rs)
        cpu = statistics.median(r["cpu_us"] for r in rs)
        core = statistics.mean(r["core"] for r in rs)
        summary[name] = {"rps": round(rps), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "bad": bad,
                         "server_cpu_us": round(cpu),
                         "server_core_share": round(core, 2)}
        per_round = ", ".join(f"{r['rps']:.0f} (p99 {r['p99']:.1f})" for r in rs)
        print(f"  {name:8s} {rps:7.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  server CPU {cpu:4.0f} us/req"
              f" ({core:.0%} of a core)  non-2xx/errors {bad:.0f}"
              f"   per round: {per_round}")
    if min(summary[n]["server_core_share"] for n in ("pointer", "healthz")) < 0.8:
        print("  note: the server used less than 80% of a core, so the client (or other load) set these figures")
    ratio = summary["pointer"]["rps"] / summary["healthz"]["rps"]
    summary["ratio"] = round(ratio, 3)
    ok = summary["pointer"]["rps"] >= 2000 and summary["pointer"]["p99_ms"] <= 20 and ratio >= 0.7
    print(f"  pointer / healthz = {ratio:.2f}   targets (>= 2000 req/s, p99 <= 20 ms, >= 0.70): "
          f"{'met' if ok else 'MISSED'}")
    if signed_reads is not None:
        summary["signed_reads"] = signed_reads
        report_signed_reads(signed_reads, summary["healthz"])
    return summary


# -- (c) signed request overhead ------------------------------------------------------------------------------
def bench_verify(n: int = 20_000) -> dict[str, float]:
    """In-process cost of each check, in microseconds: v2 HMAC, v2 HMAC + nonce write, body-only, read token."""
    from daemon.core import nonces, signing
    from daemon.core.db import connect, database

    secret = "bench-secret-0123456789abcdef"
    body = json.dumps({"userId": "u", "projectId": "p", "prompt": "A bakery with a menu"}).encode()
    target = "/build-preview-for-new-project?wait=false"
    base = time.time()
    stamps = [f"{base + i * 1e-6:.6f}" for i in range(n)]
    sigs = [signing.sign_v2(secret, "POST", target, ts, body) for ts in stamps]
    out: dict[str, float] = {}

    t0 = time.perf_counter()
    for ts, sig in zip(stamps, sigs, strict=True):
        signing.verify_request(secret, "POST", target, body, sig, ts, now=base)
    out["v2_hmac_us"] = (time.perf_counter() - t0) / n * 1e6

    tmp = Path(tempfile.mkdtemp(prefix="previewd-verify-"))
    try:
        connect(tmp)
        nonces.ensure_schema()
        with database.connection_context():
            t0 = time.perf_counter()
            for ts, sig in zip(stamps, sigs, strict=True):
                v = signing.verify_request(secret, "POST", target, body, sig, ts, now=base)
                with database.atomic("IMMEDIATE"):
                    assert v.nonce is not None and v.expires_at is not None
                    nonces.remember(v.nonce, v.expires_at, now=base)
            out["v2_with_nonce_us"] = (time.perf_counter() - t0) / n * 1e6
        database.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    legacy = signing.sign(secret, body)
    t0 = time.perf_counter()
    for _ in range(n):
        signing.verify_request(secret, "POST", target, body, legacy, None, body_only_ok=True)
    out["body_only_us"] = (time.perf_counter() - t0) / n * 1e6

    token = signing.mint_token(secret, "u", "p", int(base) + 600)
    t0 = time.perf_counter()
    for _ in range(n):
        signing.verify_token(secret, token, max_ttl_s=3600, now=base)
    out["token_us"] = (time.perf_counter() - t0) / n * 1e6
    return out


# wrk cannot compute an HMAC, so each request takes the next of a file of signatures made beforehand (each one
# is accepted once: a file too short would show up as non-2xx answers).
SIGNED_LUA = r"""
local sigs, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do sigs[#sigs + 1] = line end
end
function request()
  i = i + 1
  local ts, sig = string.match(sigs[((i - 1) % #sigs) + 1], "(%S+) (%S+)")
  return wrk.format("GET", nil, {["x-sheen-timestamp"] = ts, ["x-sheen-signature"] = sig})
end
function response(status, headers, body)
  if status ~= 200 and not shown then shown = true; io.write("first refusal: " .. body .. "\n") end
end
"""


def _signature_file(tmp: Path, secret: str, target: str, n: int) -> Path:
    from daemon.core.signing import sign_v2

    base = time.time()
    path = tmp / f"sigs-{base:.6f}.txt"
    with open(path, "w") as fh:
        for i in range(n):
            ts = f"{base + i * 1e-6:.6f}"
            fh.write(f"{ts} {sign_v2(secret, 'GET', target, ts, b'')}\n")
    return path


def bench_signed_reads(args: argparse.Namespace, d: Drill, server: psutil.Process, vid: str) -> dict[str, Any]:
    """GET /versions/{id} signed (v2, a fresh signature per request) against the same read with a read token,
    and /healthz as the run's baseline, on the live daemon of (a)."""
    from daemon.core.signing import mint_token
    from tests.support import TEST_SECRET

    use_wrk = args.client == "wrk" or (args.client == "auto" and have_wrk())
    token = mint_token(TEST_SECRET, "u", "p", int(time.time()) + 3000)
    target = f"/versions/{vid}"
    urls = {"healthz": f"{d.base}/healthz", "token": f"{d.base}{target}?token={token}", "v2": f"{d.base}{target}"}
    conns = args.connections if use_wrk else min(args.connections, 16)  # the httpx client signs in Python
    tmp = Path(tempfile.mkdtemp(prefix="previewd-sigs-"))
    lua = tmp / "signed.lua"
    lua.write_text(SIGNED_LUA)

    def phase(name: str, duration: float) -> dict[str, float]:
        if not use_wrk:
            return run_httpx(urls[name], duration, conns, "v2" if name == "v2" else "none")
        if name != "v2":
            return run_wrk(urls[name], duration, conns)
        sigs = _signature_file(tmp, TEST_SECRET, target, int(max(20_000, 6_000 * duration)))
        return run_wrk(urls[name], duration, conns, [str(lua), str(sigs)])

    try:
        for name in urls:
            phase(name, 2)  # warm-up
        results: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
        for i in range(args.rounds):
            order = list(urls)
            for name in order if i % 2 == 0 else order[::-1]:
                c0 = sum(server.cpu_times()[:2])
                r = phase(name, args.duration)
                r["cpu_us"] = (sum(server.cpu_times()[:2]) - c0) / max(1.0, r["requests"]) * 1e6
                results[name].append(r)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = {"client": "wrk -t1 (pre-signed requests)" if use_wrk else "httpx (child process)",
                           "connections": conns, "verify": bench_verify()}
    for name, rs in results.items():
        out[name] = {"rps": round(statistics.mean(r["rps"] for r in rs)),
                     "p99_ms": round(statistics.median(r["p99"] for r in rs), 2),
                     "server_cpu_us": round(statistics.median(r["cpu_us"] for r in rs)),
                     "bad": sum(r["non2xx"] + r["errors"] for r in rs)}
    return out


def report_signed_reads(r: dict[str, Any], healthz_a: dict[str, Any]) -> None:
    v = r["verify"]
    print(f"(c) signed request overhead, client {r['client']}, {r['connections']} connections, same daemon as (a)")
    print(f"  in-process check: v2 HMAC {v['v2_hmac_us']:.1f} us, v2 + nonce write {v['v2_with_nonce_us']:.1f} us, "
          f"body-only {v['body_only_us']:.1f} us, read token {v['token_us']:.1f} us")
    for name, label in (("healthz", "/healthz"), ("token", "GET /versions/{id} token"),
                        ("v2", "GET /versions/{id} v2")):
        x = r[name]
        print(f"  {label:26s} {x['rps']:7d} req/s  p99 {x['p99_ms']:6.2f} ms  server CPU {x['server_cpu_us']:4d} us/req"
              f"  non-2xx/errors {x['bad']:.0f}")
    extra = r["v2"]["server_cpu_us"] - r["token"]["server_cpu_us"]
    base = r["healthz"]["server_cpu_us"] or healthz_a["server_cpu_us"]
    v2, tok, hz = (r[k]["rps"] for k in ("v2", "token", "healthz"))
    print(f"  v2 verify overhead (v2 minus token, same handler): {extra:+d} us server CPU per request "
          f"({extra / max(1, base):.2f}x a whole /healthz request); req/s v2/token {v2 / max(1, tok):.2f}, "
          f"v2/healthz {v2 / max(1, hz):.2f}")


# -- (b) burst -------------------------------------------------------------------------------------------------
def bench_burst() -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="previewd-burst-"))
    d = Drill(tmp, drill_config(tmp)).start()
    try:
        setup_ids = burst.setup(d.base)
        burst.seed_caps(d.data_dir)
        reqs = burst.plan()
        t0 = time.monotonic()
        answer_s = asyncio.run(burst.fire(d.base, reqs))
        counts, problems = burst.expected_problems(reqs)
        accepted = burst.accepted_ids(reqs)
        finished = burst.wait_terminal(d.base, accepted)
        drain_s = time.monotonic() - t0
        problems += burst.rows_problems(d.data_dir, accepted, setup_ids, finished)
        d.sync_flush()
    finally:
        d.stop()
    problems += consistency_problems(d.data_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    statuses = {s: sum(1 for v in finished.values() if v["status"] == s) for s in ("deployed", "failed")}
    print(f"(b) burst: {len(reqs)} concurrent build requests, 20 projects, 10 users, default caps")
    print(f"  answers {dict(sorted(counts.items()))} in {answer_s * 1000:.0f} ms (all 100 answered)")
    print(f"  accepted {len(accepted)} (expected 17): {statuses['deployed']} deployed, {statuses['failed']} failed;"
          f" all finished {drain_s:.1f} s after the burst")
    r1 = [r.status for r in reqs if r.group == "rebuild-last"]
    print(f"  r1 (one rebuild left) answered 202x{r1.count(202)} 409x{r1.count(409)} 429x{r1.count(429)}")
    print("  checks: " + ("caps and dedup exact, no version lost or duplicated, DB/git/outbox consistent"
                          if not problems else "FAILED"))
    for p in problems:
        print("   - " + p)
    return {"answers": dict(counts), "accepted": len(accepted), "finished": statuses, "answer_ms": answer_s * 1000,
            "drain_s": drain_s, "problems": problems}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    ap.add_argument("--skip-read", action="store_true")
    ap.add_argument("--skip-auth", action="store_true", help="skip (c), the signed request overhead")
    ap.add_argument("--skip-burst", action="store_true")
    ap.add_argument("--httpx-phase", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.httpx_phase:
        url, dur, conns, mode = args.httpx_phase
        print(json.dumps(asyncio.run(_httpx_phase(url, float(dur), int(conns), mode))))
        return 0
    failed = False
    if not args.skip_read:
        bench_read(args)
    if not args.skip_burst:
        failed = bool(bench_burst()["problems"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

