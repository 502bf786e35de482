"""`daemonctl`: the operator CLI; talks to the running daemon over HTTP, signing with the shared secret."""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from daemon.cli import daemonctl_ops as ctl_ops
from daemon.cli import versionlist
from daemon.cli.client import Client
from daemon.cli.options import global_options
from daemon.core.config import ConfigError, load


def _print(resp: httpx.Response) -> int:
    try:
        print(json.dumps(resp.json(), indent=2))
    except ValueError:
        print(resp.text)
    if resp.status_code >= 400:
        return 1
    try:
        data = resp.json()
    except ValueError:
        return 0
    return 1 if isinstance(data, dict) and data.get("success") is False else 0


def parser() -> argparse.ArgumentParser:
    """`daemonctl`'s command line; `--config` and `--url` go before or after the subcommand."""
    p = argparse.ArgumentParser(prog="daemonctl", description="Operate a running previewd")
    common = global_options(p, {"--config": "the daemon's TOML config (default: $PREVIEWD_CONFIG)",
                                "--url": "daemon base URL (default: from the config)"})
    sub = p.add_subparsers(dest="cmd", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text)  # type: ignore[no-any-return]

    b = command("build", "build a new project")
    b.add_argument("user_id")
    b.add_argument("project_id")
    b.add_argument("prompt")
    b.add_argument("--framework")
    b.add_argument("--target", help="a workspace's package to preview (name or path)")
    b.add_argument("--no-wait", action="store_true")
    r = command("rebuild", "refine an existing project")
    r.add_argument("user_id")
    r.add_argument("project_id")
    r.add_argument("prompt")
    r.add_argument("--base", help="base version id (default: latest deployed)")
    r.add_argument("--target", help="a workspace's package to preview (default: the base version's)")
    r.add_argument("--no-wait", action="store_true")
    v = command("versions", "a project's versions, newest first: the live one marked, each preview URL")
    v.add_argument("user_id")
    v.add_argument("project_id")
    v.add_argument("--json", action="store_true", help="the API's answer plus liveVersionId and each version's live")
    s = command("show", "show one version")
    s.add_argument("version_id")
    lg = command("log", "print a version's build log")
    lg.add_argument("version_id")
    d = command("diff", "diff two versions (patch, stat or files)")
    d.add_argument("version_id")
    d.add_argument("other_id")
    d.add_argument("--mode", choices=("patch", "stat", "files", "visual-stats"), default="patch")
    d.add_argument("--visual", metavar="PNG", help="write the visual diff (screenshots, changes in red) to this file")
    rb = command("rollback", "roll a project back to a version (as a new version)")
    rb.add_argument("user_id")
    rb.add_argument("project_id")
    rb.add_argument("version_id")
    sy = command("sync", "replication: --flush drains the outbox now, --verify lists differences")
    sy.add_argument("--flush", action="store_true")
    sy.add_argument("--verify", action="store_true")
    for name in ("undo", "redo", "restore"):
        sp = command(name, {"undo": "make the previous live version live again",
                            "redo": "step forward again after undo",
                            "restore": "rebuild a project's git history from stored packs"}[name])
        sp.add_argument("user_id")
        sp.add_argument("project_id")
    us = command("usage", "a user's usage this month against its plan; --export: the billing export")
    us.add_argument("user_id", nargs="?")
    us.add_argument("--month", help="YYYY-MM (UTC; default this month)")
    us.add_argument("--org", help="the orgId whose plan applies")
    us.add_argument("--export", action="store_true", help="every user's row for the month")
    us.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="export format")
    pl = command("plan", "put a user (or with --org an org) on a plan")
    pl.add_argument("subject_id", help="the userId (or orgId with --org)")
    pl.add_argument("plan")
    pl.add_argument("--org", action="store_true", help="subject_id is an orgId")
    command("fleet", "the fleet as this droplet sees it: droplets seen, leases held, takeovers")
    command("drain", "finish the running build, release this droplet's leases, answer 503 to new builds")
    ctl_ops.add_parsers(sub, [common])
    return p


def _usage(c: Client, args: argparse.Namespace) -> int:
    """`daemonctl usage`: one user's figures as a table, or the export as the daemon wrote it."""
    month = {"month": args.month} if args.month else {}
    if args.export:
        resp = c.get("/usage/export", {**month, "format": args.format})
        if resp.status_code != 200:
            return _print(resp)
        sys.stdout.write(resp.text)
        return 0
    if not args.user_id:
        print("daemonctl usage: give a user id, or --export", file=sys.stderr)
        return 2
    resp = c.get("/usage", {"userId": args.user_id, **month, **({"orgId": args.org} if args.org else {})})
    if resp.status_code != 200:
        return _print(resp)
    data = resp.json()
    print(f"{data['userId']} {data['month']} plan {data['plan'] or '-'} (resets {data['resetsAt']})")
    print(f"{'QUOTA':20}  {'USED':>14}  {'LIMIT':>14}  RATIO")
    for q in data["quotas"]:
        ratio = f"{q['ratio'] * 100:.0f}%" if q["ratio"] is not None else "-"
        print(f"{q['quota']:20}  {q['used']:>14}  {q['limit'] if q['limit'] is not None else '-':>14}  {ratio}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `daemonctl` console script."""
    args = parser().parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"daemonctl: config error: {exc}", file=sys.stderr)
        return 2
    # Commands that must work without the daemon (or its secret): config check, doctor, offline status.
    rc = ctl_ops.dispatch(args, None, cfg)
    if rc is not None:
        return rc
    c = Client(cfg, args.url)
    try:
        if args.cmd == "build":
            payload = {"userId": args.user_id, "projectId": args.project_id, "prompt": args.prompt}
            if args.framework:
                payload["framework"] = args.framework
            if args.target:
                payload["targetPackage"] = args.target
            return _print(c.post("/build-preview-for-new-project", payload,
                                 {"wait": "false"} if args.no_wait else None))
        if args.cmd == "rebuild":
            payload = {"userId": args.user_id, "projectId": args.project_id, "prompt": args.prompt}
            if args.base:
                payload["baseVersionId"] = args.base
            if args.target:
                payload["targetPackage"] = args.target
            return _print(c.post("/rebuild-preview", payload, {"wait": "false"} if args.no_wait else None))
        if args.cmd == "versions":
            resp = c.get("/versions", {"userId": args.user_id, "projectId": args.project_id})
            if resp.status_code != 200:
                return _print(resp)
            answer = resp.json()
            answer = versionlist.annotate(answer, versionlist.live_version_id(c, args.user_id, args.project_id,
                                                                              answer))
            print(json.dumps(answer, indent=2) if args.json else versionlist.table(args.user_id, args.project_id,
                                                                                   answer))
            return 0
        if args.cmd == "show":
            resp = c.get(f"/versions/{args.version_id}")
            code = _print(resp)
            if resp.status_code == 200:  # on stderr: stdout stays the version's JSON for scripts
                print(versionlist.timings_line(resp.json()), file=sys.stderr)
            return code
        if args.cmd == "log":
            resp = c.get(f"/versions/{args.version_id}/log")
            sys.stdout.write(resp.text)
            return 0 if resp.status_code == 200 else 1
        if args.cmd == "diff" and args.visual:
            resp = c.get(f"/versions/{args.version_id}/diff/{args.other_id}", {"mode": "visual"})
            if resp.status_code != 200:
                return _print(resp)
            with open(args.visual, "wb") as fh:
                fh.write(resp.content)
            print(f"wrote {args.visual} ({len(resp.content)} bytes)")
            return 0
        if args.cmd == "diff":
            resp = c.get(f"/versions/{args.version_id}/diff/{args.other_id}", {"mode": args.mode})
            if args.mode == "patch" and resp.status_code == 200:
                sys.stdout.write(resp.text)
                return 0
            return _print(resp)
        if args.cmd == "rollback":
            return _print(c.post(f"/rollback/{args.version_id}",
                                 {"userId": args.user_id, "projectId": args.project_id}))
        if args.cmd == "sync":
            code = 0
            if args.flush or not args.verify:
                code |= _print(c.post("/ops/sync", {}))
            if args.verify:
                resp = c.get("/ops/sync/verify")
                code |= _print(resp)
                if resp.status_code == 200 and resp.json().get("count"):
                    code |= 1
            return code
        if args.cmd == "fleet":
            return _print(c.get("/ops/fleet"))
        if args.cmd == "drain":
            return _print(c.post("/ops/drain", {}))
        if args.cmd in ("undo", "redo", "restore"):
            return _print(c.post(f"/projects/{args.user_id}/{args.project_id}/{args.cmd}", {}))
        if args.cmd == "usage":
            return _usage(c, args)
        if args.cmd == "plan":
            kind = "orgs" if args.org else "users"
            return _print(c.put(f"/{kind}/{args.subject_id}/plan", {"plan": args.plan}))
        rc = ctl_ops.dispatch(args, c, cfg)
        if rc is not None:
            return rc
    except httpx.HTTPError as exc:
        print(f"daemonctl: cannot reach the daemon at {c.base}: {exc}. Try: is `previewd serve` running?",
              file=sys.stderr)
        return 3
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
