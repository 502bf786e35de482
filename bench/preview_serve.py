"""Benchmark: the preview wrapper's static serving against a pass-through request to the inner app, same run.

Usage: .venv/bin/python bench/preview_serve.py [--requests 3000] [--concurrency 50] [--asset-kb 4] [--rounds 3]

Starts uvicorn in a child process with `make_preview_asgi` around a trivial inner ASGI app (or a Litestar app
with `--litestar`), deploys a small Vite-like site with the local deployer, then fires a bounded number of
requests per phase and round with an async httpx client and prints requests/s, p50 and p99 for
(a) pass-through `/healthz`, (b) a hashed static asset of the deployment, (c) `/healthz` on the bare inner
app without the wrapper, and the ratios (b)/(a) and (a)/(c). It also times the ASGI calls in-process (no
sockets), which shows the wrapper's own CPU cost per request apart from the HTTP stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.deployers.base import DeployRequest  # noqa: E402
from daemon.deployers.local import LocalDeployer  # noqa: E402

VERSION_ID = "01JDQ8Z5V7K3M9QX2R4T6W8Y0A"
ASSET_PATH = "/assets/index-BfK3tX9a.js"


async def trivial_inner(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The stand-in API: one JSON answer for every path."""
    if scope["type"] != "http":
        return
    body = b'{"status":"ok"}'
    # Content-Length as the static path sends it, so neither side pays for chunked encoding.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def litestar_inner() -> Any:
    """A minimal Litestar app with `/healthz`, closer to what the daemon wraps."""
    from litestar import Litestar, get

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[healthz], openapi_config=None)


def serve(port: int, previews: Path | None, litestar: bool) -> None:
    """Child process: run uvicorn on loopback, wrapped unless `previews` is None."""
    import uvicorn

    from daemon.api.previews import make_preview_asgi

    app: Any = litestar_inner() if litestar else trivial_inner
    if previews is not None:
        app = make_preview_asgi(app, previews, "localhost")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="auto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_child(previews: Path | None, litestar: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", str(port), "--previews", str(previews or "")]
    if litestar:
        argv.append("--litestar")
    proc = subprocess.Popen(argv, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, port
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def fire(port: int, path: str, host: str, total: int, concurrency: int) -> dict[str, float]:
    """Send `total` GETs with `concurrency` workers on keep-alive connections; return rps and latencies."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        headers = {"Host": host}
        for _ in range(min(200, total)):  # warm up connections and the page cache
            (await client.get(path, headers=headers)).raise_for_status()
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                r = await client.get(path, headers=headers)
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": total / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def in_process(previews: Path, deployment_id: str, calls: int) -> dict[str, float]:
    """CPU microseconds per ASGI call: bare inner app, wrapped pass-through, wrapped static asset."""
    from daemon.api.previews import make_preview_asgi

    wrapped = make_preview_asgi(trivial_inner, previews, "localhost")
    common = [(b"user-agent", b"bench"), (b"accept", b"*/*"), (b"accept-encoding", b"gzip")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    def scope(path: str, host: str) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": path, "headers": [(b"host", host.encode()), *common]}

    cases = {
        "bare_inner": (trivial_inner, scope("/healthz", "127.0.0.1:8080")),
        "wrapped_passthrough": (wrapped, scope("/healthz", "127.0.0.1:8080")),
        "wrapped_static": (wrapped, scope(ASSET_PATH, f"{deployment_id}.localhost:8080")),
    }

    async def run(app: Any, sc: dict[str, Any]) -> float:
        for _ in range(200):
            await app(sc, receive, send)
        t0 = time.process_time()
        for _ in range(calls):
            await app(sc, receive, send)
        return (time.process_time() - t0) / calls * 1e6

    return {name: asyncio.run(run(app, sc)) for name, (app, sc) in cases.items()}


def make_site(base: Path, asset_kb: int) -> Path:
    out = base / "dist"
    (out / "assets").mkdir(parents=True)
    (out / "index.html").write_text(f'<!doctype html><script type=module src="{ASSET_PATH}"></script>')
    (out / "assets" / ASSET_PATH.rsplit("/", 1)[1]).write_bytes(b"x" * (asset_kb * 1024))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--asset-kb", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is shown")
    ap.add_argument("--litestar", action="store_true", help="wrap a Litestar app instead of a raw ASGI one")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--previews", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, Path(args.previews) if args.previews else None, args.litestar)
        return

    with tempfile.TemporaryDirectory(prefix="preview-bench-") as tmp:
        base = Path(tmp)
        previews = base / "previews"
        deployer = LocalDeployer(previews)
        dep = deployer.deploy(
            DeployRequest(make_site(base, args.asset_kb), "bench", "bench", VERSION_ID, "bench"), lambda _: None
        )
        # Both servers run at once and the phases interleave round by round, so load from anything
        # else on the machine falls on all three alike; the best round of each is reported.
        wrapped, wport = start_child(previews, args.litestar)
        bare, bport = start_child(None, args.litestar)
        phases = {
            "a_passthrough_healthz": (wport, "/healthz", f"127.0.0.1:{wport}"),
            "b_static_asset": (wport, ASSET_PATH, f"{dep.deployment_id}.localhost:{wport}"),
            "c_bare_inner_healthz": (bport, "/healthz", f"127.0.0.1:{bport}"),
        }
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in phases}
        try:
            for _ in range(args.rounds):
                for name, (port, path, host) in phases.items():
                    rounds[name].append(asyncio.run(fire(port, path, host, args.requests, args.concurrency)))
        finally:
            stop_child(wrapped)
            stop_child(bare)
        cpu_us = in_process(previews, dep.deployment_id, 20000)
        results = {name: max(runs, key=lambda r: r["rps"]) for name, runs in rounds.items()}
        medians = {name: statistics.median(r["rps"] for r in runs) for name, runs in rounds.items()}

    print(
        f"requests={args.requests} concurrency={args.concurrency} asset={args.asset_kb} KiB "
        f"inner={'litestar' if args.litestar else 'raw ASGI'} rounds={args.rounds} cpus={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f}"
    )
    for name, r in results.items():
        print(
            f"{name:24s} best {r['rps']:6.0f} req/s (median {medians[name]:6.0f})   "
            f"p50 {r['p50_ms']:6.2f} ms   p99 {r['p99_ms']:6.2f} ms"
        )
    a, b, c = (results[k]["rps"] for k in ("a_passthrough_healthz", "b_static_asset", "c_bare_inner_healthz"))
    print(f"ratio static/pass-through (b/a) = {b / a:.2f}")
    print(f"ratio wrapped/bare pass-through (a/c) = {a / c:.2f}")
    print("in-process CPU per ASGI call: " + ", ".join(f"{k} {v:.1f} us" for k, v in cpu_us.items()))
    summary: dict[str, Any] = {k: {m: round(v, 2) for m, v in r.items()} for k, r in results.items()}
    summary["in_process_cpu_us"] = {k: round(v, 2) for k, v in cpu_us.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
