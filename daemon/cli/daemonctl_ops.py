"""daemonctl's operations verbs: status (also offline), logs [--follow], pin, cleanup, config check, doctor."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any, cast

import httpx

from daemon.cli.client import Client
from daemon.core.config import Config

COMMANDS = ("status", "logs", "pin", "cleanup", "config", "doctor", "ui-token")
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DOWN = 0, 1, 2, 3


def add_parsers(sub: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Register the operations subcommands on daemonctl's subparsers (each takes the ``parents``' options)."""

    def add(subparsers: Any, name: str, **kw: Any) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=list(parents), **kw)  # type: ignore[no-any-return]

    s = add(sub, "status", help="daemon status and alerts (reads the state files when the daemon is down); "
                                "exit 0 healthy, 1 alerts firing, 3 daemon down")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    lg = add(sub, "logs", help="a build's log; --follow streams it live until the build ends")
    lg.add_argument("version_id")
    lg.add_argument("--follow", "-f", action="store_true")
    p = add(sub, "pin", help="pin a version so cleanup never deletes it (--off to unpin)")
    p.add_argument("version_id")
    p.add_argument("--off", action="store_true", help="unpin")
    c = add(sub, "cleanup", help="run the retention cleanup now")
    c.add_argument("--dry-run", action="store_true", help="report what would be done, change nothing")
    c.add_argument("--json", action="store_true")
    cfg = add(sub, "config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_cmd", required=True)
    add(cfg_sub, "check", help="validate the config (file, environment) and exit")
    add(sub, "doctor", help="toolchain, sandbox layer and isolation on this machine")
    t = add(sub, "ui-token", help="print a token that signs an operator in to the dashboard (/ui)")
    t.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")


def dispatch(args: argparse.Namespace, client: Client | None, cfg: Config) -> int | None:
    """Run the command when it is one of ours (None otherwise). ``client`` may be None: made on demand."""
    cmd = getattr(args, "cmd", None)
    if cmd not in COMMANDS:
        return None
    if cmd == "config":
        print(f"config ok ({cfg.source}); data dir {cfg.data_dir}")
        return EXIT_OK
    if cmd == "doctor":
        from daemon.cli.previewd import doctor_report

        print(json.dumps(doctor_report(cfg), indent=2, default=str))
        return EXIT_OK
    if cmd == "ui-token":
        from daemon.core.config import ensure_hmac_secret
        from daemon.ui.access import mint_token

        try:
            print(mint_token(ensure_hmac_secret(cfg), args.ttl))
        except ValueError as exc:
            print(f"daemonctl: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"sign in at {cfg.base_url}/ui/sign-in (valid {args.ttl} s)", file=sys.stderr)
        return EXIT_OK
    if cmd == "status":
        return status(cfg, client, as_json=args.json, url=getattr(args, "url", None))
    c = client or _client(cfg, getattr(args, "url", None))
    try:
        if cmd == "logs":
            return follow_logs(c, args.version_id) if args.follow else _plain_log(c, args.version_id)
        if cmd == "pin":
            resp = c.post(f"/versions/{args.version_id}/{'unpin' if args.off else 'pin'}", {})
            if resp.status_code != 200:
                return _error(resp)
            v = resp.json()
            print(f"{v['versionId']} {'pinned' if v['pinned'] else 'unpinned'}")
            return EXIT_OK
        if cmd == "cleanup":
            resp = c.post("/ops/cleanup", {}, {"dryRun": "true"} if args.dry_run else None)
            if resp.status_code != 200:
                return _error(resp)
            report = resp.json()
            print(json.dumps(report, indent=2) if args.json else render_cleanup(report))
            return EXIT_OK if report.get("ok") else EXIT_FAIL
    except httpx.HTTPError as exc:
        return _unreachable(c.base, exc)
    return EXIT_USAGE


def _client(cfg: Config, url: str | None) -> Client:
    return Client(cfg, url)


def _unreachable(base: str, exc: Exception) -> int:
    print(f"daemonctl: cannot reach the daemon at {base} ({type(exc).__name__}). Try: is `previewd serve` "
          "running, and is --url / [server] port right?", file=sys.stderr)
    return EXIT_DOWN


def _error(resp: httpx.Response) -> int:
    try:
        err = resp.json().get("error", {})
        print(f"daemonctl: {resp.status_code} {err.get('code')}: {err.get('message')}", file=sys.stderr)
    except (ValueError, AttributeError):
        print(f"daemonctl: {resp.status_code}: {resp.text[:500]}", file=sys.stderr)
    return EXIT_FAIL


def _plain_log(c: Client, version_id: str) -> int:
    resp = c.get(f"/versions/{version_id}/log")
    if resp.status_code != 200:
        return _error(resp)
    sys.stdout.write(resp.text)
    return EXIT_OK


def follow_logs(c: Client, version_id: str) -> int:
    """Print the SSE stream's lines as they come; exit 0 when the build deployed, 1 otherwise."""
    event, data = "message", cast(list[str], [])
    final: dict[str, Any] | None = None
    with c.http.stream("GET", f"{c.base}/builds/{version_id}/logs", timeout=httpx.Timeout(30, read=None)) as resp:
        if resp.status_code != 200:
            resp.read()
            return _error(resp)
        for raw in resp.iter_lines():
            if raw == "":
                if data and event == "status":
                    final = json.loads("\n".join(data))
                elif data:
                    print("\n".join(data), flush=True)
                event, data = "message", []
                continue
            if raw.startswith(":"):
                continue
            name, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if final is None:
        print("daemonctl: the log stream ended without a status", file=sys.stderr)
        return EXIT_FAIL
    reason = f" ({final['failureReason']})" if final.get("failureReason") else ""
    print(f"--- {final['versionId']} {final['status']}{reason}", file=sys.stderr)
    return EXIT_OK if final["status"] == "deployed" else EXIT_FAIL


def render_cleanup(report: dict[str, Any]) -> str:
    """A cleanup report as an aligned table plus the actions taken (or planned)."""
    head = "cleanup (dry run: nothing changed)" if report.get("dryRun") else "cleanup"
    rows = [head, f"{'STEP':22} {'RESULT':7} COUNTS"]
    for s in report["steps"]:
        counts = ", ".join(f"{k}={v}" for k, v in s["counts"].items()) or "-"
        rows.append(f"{s['name']:22} {'ok' if s['ok'] else 'FAILED':7} {counts}")
        if s.get("error"):
            rows.append(f"{'':30}error: {s['error']}")
    actions = [a for s in report["steps"] for a in s["actions"]]
    if actions:
        rows += ["", "would do:" if report.get("dryRun") else "did:"] + [f"  {a}" for a in actions]
    return "\n".join(rows)


# -- status ---------------------------------------------------------------------------------------------------

def status(cfg: Config, client: Client | None, *, as_json: bool, url: str | None = None) -> int:
    """The daemon's status with its alerts; when unreachable, what the state files say."""
    base = (url or cfg.base_url).rstrip("/")
    try:
        c = client or _client(cfg, url)
        base = c.base
        resp = c.get("/status")
        if resp.status_code != 200:
            return _error(resp)
        data: dict[str, Any] = {"daemon": "up", "url": base, **resp.json()}
        health = c.get("/healthz/detail")
        data["alerts"] = health.json().get("alerts", []) if health.status_code == 200 else []
    except (httpx.HTTPError, SystemExit) as exc:
        data = offline_status(cfg)
        data["url"] = base
        data["reason"] = type(exc).__name__ if isinstance(exc, httpx.HTTPError) else str(exc)
    print(json.dumps(data, indent=2, default=str) if as_json else render_status(data))
    if data["daemon"] != "up":
        return EXIT_DOWN
    return EXIT_FAIL if data["alerts"] else EXIT_OK


def offline_status(cfg: Config) -> dict[str, Any]:
    """Versions by status and the sync backlog, read straight from state.db (read-only)."""
    path = cfg.data_dir / "state.db"
    out: dict[str, Any] = {"daemon": "down", "dataDir": str(cfg.data_dir), "versions": {}, "sync": {},
                           "alerts": []}
    if not path.exists():
        out["stateError"] = f"no state database at {path}"
        return out
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        out["stateError"] = f"cannot open {path}: {exc}"
        return out
    try:
        out["versions"] = dict(conn.execute("SELECT status, count(*) FROM project_versions GROUP BY status"))
        out["queue"] = {"running": [r[0] for r in conn.execute(
            "SELECT version_id FROM project_versions WHERE status IN ('building', 'deploying')")]}
        now = time.time()
        try:
            for dest, pending, dead, oldest in conn.execute(
                    "SELECT destination, sum(dead = 0), sum(dead = 1), min(CASE WHEN dead = 0 THEN created_at END) "
                    "FROM sync_outbox GROUP BY destination"):
                out["sync"][dest] = {"pending": int(pending or 0), "dead": int(dead or 0),
                                     "oldest_age_s": round(now - oldest, 1) if oldest else 0.0}
        except sqlite3.OperationalError:
            pass  # no outbox table yet: nothing was ever queued
    except sqlite3.Error as exc:
        out["stateError"] = f"cannot read {path}: {exc}"
    finally:
        conn.close()
    return out


def render_status(data: dict[str, Any]) -> str:
    """A status dict as a readable block."""
    up = data["daemon"] == "up"
    lines = [f"daemon     {'up' if up else 'DOWN'} at {data.get('url')}"
             + ("" if up else f" ({data.get('reason', 'unreachable')}); state read from {data.get('dataDir')}")]
    if data.get("stateError"):
        lines.append(f"state      {data['stateError']}")
    if up:
        lines.append(f"sandbox    {data.get('sandbox', {}).get('layer')}   generator {data.get('generator')}   "
                     f"deployer {data.get('deployer')}")
        tc = data.get("toolchain", {})
        lines.append(f"toolchain  node {tc.get('node')}  pnpm {tc.get('pnpm')}" if "error" not in tc
                     else f"toolchain  ERROR {tc['error']}")
    q = data.get("queue", {})
    running = q.get("running") or []
    lines.append(f"queue      {q.get('pending', '?')} waiting, {len(running)} running"
                 + (f" ({', '.join(running)})" if running else ""))
    versions = data.get("versions") or {}
    lines.append("versions   " + ("  ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "none"))
    sync = data.get("sync") or {}
    if sync:
        lines.append(f"{'sync':10} {'DEST':9} {'PENDING':>7} {'DEAD':>5} {'LAG s':>8}  LAST ERROR")
        for dest, b in sorted(sync.items()):
            lines.append(f"{'':10} {dest:9} {b.get('pending', 0):>7} {b.get('dead', 0):>5} "
                         f"{b.get('oldest_age_s', 0):>8}  {b.get('last_error') or ''}")
    else:
        lines.append("sync       nothing waiting")
    disk = data.get("disk")
    if disk:
        lines.append(f"disk       {disk.get('freeBytes', 0) // 2**20} MiB free, {disk.get('usedPercent')}% used "
                     f"({disk.get('dataDir')})")
    jobs = data.get("jobs") or []
    if jobs:
        lines.append("jobs       " + "  ".join(f"{j['name']} {'up' if j.get('alive') else 'idle'}" for j in jobs))
    alerts = data.get("alerts") or []
    if up:
        lines.append("alerts     " + ("none" if not alerts else f"{len(alerts)} FIRING"))
    for a in alerts:
        lines.append(f"  ! {a['name']}: {a['message']} (since {a.get('since') or '?'})")
    return "\n".join(lines)
