"""Drill helpers: a prompt-driven command generator, a killable live daemon, and the end-of-drill consistency check."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

from tests.support import wait_until
from tests.support.live import LiveDaemon

TERMINAL = ("deployed", "failed")

# One generator for every drill: the prompt's first word picks the behaviour, the rest lands in index.html.
#   hang            sleeps for an hour (the generator timeout must end it)
#   flood           prints 50 MB of non-JSON on stdout
#   slowinstall:S   package.json has a preinstall script sleeping S seconds
#   slowbuild:S     the build script sleeps S seconds before writing dist/
#   bigout:MB       the build writes MB MiB of incompressible files into dist/ (1 MiB each: under the per-file cap)
#   bigsrc:MB       the same into the workspace's root (not an output dir)
#   deps:A@1,B@2    package.json depends on these exact registry versions (a real pnpm install)
#   anything else   a tiny dependency-free project whose build copies index.html to dist/
GENERATOR = textwrap.dedent('''
    import json, sys, time
    req = json.load(sys.stdin)
    prompt = req["prompt"]
    word, _, arg = prompt.split(" ", 1)[0].partition(":")
    if word == "hang":
        time.sleep(3600)
    if word == "flood":
        chunk = "x" * 65536 + "\\n"
        for _ in range(800):
            sys.stdout.write(chunk)
        sys.exit(0)
    build = "mkdir -p dist && cp index.html dist/"
    scripts = {}
    if word == "slowinstall":
        scripts["preinstall"] = "sleep " + arg
    if word == "slowbuild":
        build = "sleep " + arg + " && " + build
    if word == "bigout":
        build += " && for i in $(seq " + arg + "); do head -c 1048576 /dev/urandom > dist/blob$i.bin; done"
    if word == "bigsrc":
        build += " && head -c " + str(int(arg) * 1048576) + " /dev/urandom > blob.bin"
    scripts["build"] = build
    pkg = {"name": "drill", "version": "0.0.0", "private": True, "scripts": scripts}
    if word == "deps":
        pkg["dependencies"] = dict(d.rsplit("@", 1) for d in arg.split(","))
    print(json.dumps({"name": "drill", "slug": "drill", "description": "d", "version": "0.1.0", "author": "t",
                      "repository": "", "license": "MIT", "tech_stack": [],
                      "metadata": {"tags": [], "industry_tags": [], "style_tags": [], "core_pages": {},
                                   "components": [], "design_tokens": {}, "rsc_path": ""},
                      "templateFiles": [{"path": "package.json", "content": json.dumps(pkg)}],
                      "files": [{"path": "index.html", "content": "<h1>" + prompt + "</h1>"}]}))
''')


def drill_config(tmp: Path, extra: str = "", *, sync_interval_s: float = 0.2,
                 generator_timeout_s: float = 120.0) -> str:
    """Config text: the drill generator, no audit, no render check, fast sync ticks; `extra` appended."""
    gen = tmp / "gen.py"
    gen.write_text(GENERATOR)
    return textwrap.dedent(f'''
        [generator]
        backend = "command"
        command = ["{sys.executable}", "{gen}"]
        timeout_s = {generator_timeout_s}
        [build]
        audit = "off"
        [render]
        enabled = false
        [sync]
        interval_s = {sync_interval_s}
    ''') + textwrap.dedent(extra)


class Drill(LiveDaemon):
    """A live daemon that can be SIGKILLed and restarted on the same data dir."""

    env: dict[str, str] | None = None  # extra environment for every (re)start: DSNs, store keys

    def start(self) -> Drill:
        old = {k: os.environ.get(k) for k in (self.env or {})}
        os.environ.update(self.env or {})
        try:
            super().start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return self

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the daemon (no cleanup of any kind runs), then reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def build(self, user: str, project: str, prompt: str, *, wait: bool = True) -> dict[str, Any]:
        """A new-project build; with wait=False the 202 body (versionId) comes back at once."""
        params = {} if wait else {"wait": "false"}
        r = self.post("/build-preview-for-new-project", {"userId": user, "projectId": project, "prompt": prompt},
                      **params)
        assert r.status_code in (200, 202), r.text
        return r.json()  # type: ignore[no-any-return]

    def rebuild(self, user: str, project: str, prompt: str, *, wait: bool = True) -> dict[str, Any]:
        params = {} if wait else {"wait": "false"}
        r = self.post("/rebuild-preview", {"userId": user, "projectId": project, "prompt": prompt}, **params)
        assert r.status_code in (200, 202), r.text
        return r.json()  # type: ignore[no-any-return]

    def wait_log(self, version_id: str, needle: str, timeout: float = 60) -> None:
        """Wait until the version's build log contains `needle` (the drill's cue to strike)."""
        path = self.data_dir / "logs" / f"{version_id}.log"
        wait_until(lambda: path.exists() and needle in path.read_text(errors="replace"), timeout,
                   what=f"{needle!r} appearing in the log of {version_id}")

    def outbox_failing(self, destination: str, timeout: float = 30) -> str:
        """Wait until the sync loop has failed to deliver to `destination` with rows still queued; its last error."""

        def last_error() -> list[str]:  # a list, so an empty error text still counts as found
            conn = sqlite3.connect(str(self.data_dir / "state.db"), timeout=30)
            try:
                pending = conn.execute("SELECT COUNT(*) FROM sync_outbox WHERE destination = ? AND dead = 0",
                                       (destination,)).fetchone()[0]
                row = conn.execute("SELECT failures, last_error FROM sync_outbox_state WHERE destination = ?",
                                   (destination,)).fetchone()
            finally:
                conn.close()
            return [str(row[1])] if pending and row and row[0] > 0 else []

        found: list[str] = wait_until(last_error, timeout, interval=0.1,
                                      what=f"the outbox reporting {destination} failing")
        return found[0]

    def sync_flush(self) -> dict[str, Any]:
        r = self.post("/ops/sync", {})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def leftover_processes(root_dir: Path, exclude: set[int] | None = None) -> list[str]:
    """Processes whose cwd or command line is inside root_dir (builds, generators, pnpm): orphans."""
    root = str(root_dir.resolve())
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if exclude and p.info["pid"] in exclude:
            continue
        cmd = " ".join(p.info["cmdline"] or [])
        cwd = p.info["cwd"] or ""
        if cwd.startswith(root) or root in cmd:
            found.append(f"{p.info['pid']} cwd={cwd} cmd={cmd[:200]}")
    return found


def wait_no_leftovers(root_dir: Path, timeout: float = 15, exclude: set[int] | None = None) -> list[str]:
    """Leftover processes still there after `timeout` (a killed tree may take a moment to exit)."""
    deadline = time.monotonic() + timeout
    while True:
        left = leftover_processes(root_dir, exclude)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def git_tags(repo: Path) -> set[str]:
    out = subprocess.run(["git", "-C", str(repo), "tag", "--list"], capture_output=True, text=True, check=True)
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def consistency_problems(data_dir: Path, *, pg_schema: str | None = None, pg_dsn: str | None = None,
                         expect_drained: bool = True) -> list[str]:
    """Every invariant the drills promise, checked on the files a stopped or idle daemon left; [] when all hold.

    SQLite intact; every version terminal, failed ones with a reason; one Project row per project whose live
    version is deployed; git repos pass `git fsck`, their tags are versions of that project and every deployed
    version has its tag; the outbox drained; Postgres (when given) holds exactly the local rows at their
    row_version.
    """
    problems: list[str] = []
    conn = sqlite3.connect(str(data_dir / "state.db"), timeout=30)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            problems.append(f"state.db integrity_check: {ok}")
        rows = conn.execute("SELECT version_id, user_id, project_id, status, failure_reason, row_version "
                            "FROM project_versions").fetchall()
        by_project: dict[tuple[str, str], dict[str, str]] = {}
        for vid, user, proj, status, reason, _ in rows:
            by_project.setdefault((user, proj), {})[vid] = status
            if status not in TERMINAL:
                problems.append(f"version {vid} stuck in {status}")
            if status == "failed" and not reason:
                problems.append(f"version {vid} failed without a reason")
        live_rows = conn.execute("SELECT user_id, project_id, live_version_id FROM projects").fetchall()
        seen: set[tuple[str, str]] = set()
        for user, proj, live in live_rows:
            if (user, proj) in seen:
                problems.append(f"two Project rows for {user}/{proj}")
            seen.add((user, proj))
            if live and by_project.get((user, proj), {}).get(live) != "deployed":
                problems.append(f"{user}/{proj} live version {live} is "
                                f"{by_project.get((user, proj), {}).get(live, 'missing')}")
        for (user, proj), vers in by_project.items():
            if "deployed" in vers.values() and (user, proj) not in seen:
                problems.append(f"{user}/{proj} has deployed versions but no Project row")
        if expect_drained:
            pending = conn.execute("SELECT destination, COUNT(*) FROM sync_outbox GROUP BY destination").fetchall()
            if pending:
                problems.append(f"outbox not drained: {pending}")
    finally:
        conn.close()
    for (user, proj), vers in by_project.items():
        repo = data_dir / "projects" / user / proj / "repo.git"
        if not repo.exists():
            if "deployed" in vers.values():
                problems.append(f"{user}/{proj} has deployed versions but no repo")
            continue
        fsck = subprocess.run(["git", "-C", str(repo), "fsck", "--no-progress"], capture_output=True, text=True)
        if fsck.returncode != 0:
            problems.append(f"git fsck {user}/{proj}: {fsck.stderr.strip()[:500]}")
        tags = git_tags(repo)
        if tags - set(vers):
            problems.append(f"{user}/{proj} tags without a version row: {sorted(tags - set(vers))}")
        missing = {v for v, s in vers.items() if s == "deployed"} - tags
        if missing:
            problems.append(f"{user}/{proj} deployed versions without a tag: {sorted(missing)}")
    if pg_schema is not None:
        problems += _pg_problems(rows, pg_schema, pg_dsn)
    return problems


def _pg_problems(rows: list[tuple[Any, ...]], schema: str, dsn: str | None) -> list[str]:
    import psycopg
    from psycopg import sql

    from tests.integration.sync.support import PG_DSN

    with psycopg.connect(dsn or PG_DSN) as conn:
        q = sql.SQL("SELECT version_id, status, row_version FROM {}.project_versions").format(sql.Identifier(schema))
        remote = {r[0]: (r[1], int(r[2])) for r in conn.execute(q).fetchall()}
    local = {r[0]: (r[3], int(r[5])) for r in rows}
    problems = []
    for vid in sorted(set(local) | set(remote)):
        if local.get(vid) != remote.get(vid):
            problems.append(f"postgres row {vid}: local {local.get(vid)} vs remote {remote.get(vid)}")
    return problems


def other_pids() -> set[int]:
    """This test process and its ancestors (their command lines name tmp dirs too)."""
    me = psutil.Process(os.getpid())
    return {me.pid, *(p.pid for p in me.parents())}
