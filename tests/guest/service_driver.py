"""Runs in the systemd guest as root, after the unit is installed: drives the service through its API and systemctl.

Standard library only (it runs on the guest's /usr/bin/python3 beside the service, not in the checkout's venv).
Every check writes a fact into `<io>/facts.json` as soon as it is known, so a guest that stops halfway still says
how far it got. One daemon start serves the builds, the limit and the isolation attacks; a stop during a build and
one start after it close the run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

API = "http://127.0.0.1:8080"
DATA = Path("/var/lib/previewd")
UNIT_CGROUP = Path("/sys/fs/cgroup/system.slice/previewd.service")
CANARY = "canary-4f1d9c"  # in a root-only file of the data dir and in a file outside it
VICTIM_PAGE = "<h1>alice's page</h1>"


def sign_v2(secret: str, method: str, target: str, stamp: str, body: bytes) -> str:
    """daemon.core.signing.sign_v2, restated with the standard library (tests/guest/test_vm_units.py compares)."""
    message = f"{method.upper()}\n{target}\n{stamp}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class Driver:
    """The facts file, a signed API client and the service's systemctl verbs."""

    def __init__(self, io: Path, secret: str) -> None:
        self.io = io
        self.secret = secret
        self.facts: dict[str, Any] = {}

    def fact(self, key: str, value: Any) -> None:
        self.facts[key] = value
        tmp = self.io / "facts.json.tmp"
        tmp.write_text(json.dumps(self.facts, indent=1))
        tmp.replace(self.io / "facts.json")
        print(f"fact {key} = {value!r}", flush=True)

    def request(self, method: str, path: str, payload: Any = None, *, host: str | None = None,
                sign: bool = True, timeout: float = 60) -> tuple[int, bytes]:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if sign:
            stamp = f"{time.time():.6f}"
            headers["x-sheen-timestamp"] = stamp
            headers["x-sheen-signature"] = "sha256=" + sign_v2(self.secret, method, path, stamp, body)
        if host:
            headers["host"] = host
        req = urllib.request.Request(API + path, data=body if payload is not None else None, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError as err:
            return 0, str(err).encode()

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        status, body = self.request(method, path, payload)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {body[:500]!r}")
        return json.loads(body)

    def wait_healthy(self, limit: float = 900) -> float | None:
        """Seconds of guest uptime until /healthz answers 200, None when the unit failed or the limit passed."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if self.request("GET", "/healthz", sign=False, timeout=5)[0] == 200:
                return round(time.monotonic() - t0, 1)
            if sh("systemctl", "-q", "is-failed", "previewd").returncode == 0:
                return None
            time.sleep(0.5)
        return None

    def build(self, user: str, project: str, prompt: str, *, wait: bool = True, limit: float = 900) -> dict[str, Any]:
        """Queue a first build (never waiting in the request: a TCG build can outlast a proxy); poll it to its end."""
        t0 = time.monotonic()
        queued = self.json("POST", "/build-preview-for-new-project?wait=false",
                           {"userId": user, "projectId": project, "prompt": prompt})
        vid = queued["versionId"]
        if not wait:
            return {"versionId": vid}
        while time.monotonic() - t0 < limit:
            v: dict[str, Any] = self.json("GET", f"/versions/{vid}")
            if v["status"] in ("deployed", "failed"):
                v["seconds"] = round(time.monotonic() - t0, 1)
                return v
            time.sleep(1)
        raise RuntimeError(f"build {vid} ({prompt}) still running after {limit:g} s")

    def page(self, user: str, project: str, path: str = "/") -> tuple[int, str]:
        """A file of the project's live preview, fetched by its Host header."""
        url = self.json("GET", f"/projects/{user}/{project}/preview")["previewUrl"]
        host = url.split("//", 1)[1].split("/", 1)[0]
        status, body = self.request("GET", path, host=host, sign=False)
        return status, body.decode(errors="replace")

    def log(self, vid: str) -> str:
        return self.request("GET", f"/versions/{vid}/log")[1].decode(errors="replace")


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def unit_procs() -> list[int]:
    """Every pid left anywhere in the unit's cgroup subtree."""
    pids: list[int] = []
    for procs in UNIT_CGROUP.rglob("cgroup.procs") if UNIT_CGROUP.exists() else []:
        pids += [int(p) for p in procs.read_text().split()]
    return pids


def find_pid(needle: str, limit: float = 300, give_up: Callable[[], bool] = lambda: False) -> int | None:
    """The first process whose command line contains `needle`, waited for (not once `give_up()` is true)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and not give_up():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if needle in cmd:
                    return int(entry.name)
        time.sleep(0.5)
    return None


def lines(text: str) -> dict[str, str]:
    """`name=yes|no` lines the hostile build printed (with the `hostile:` tag) -> {name: answer}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        _, tag, rest = line.partition("hostile:")
        if tag and "=" in rest:
            key, _, value = rest.strip().partition("=")
            out[key] = value
    return out


def digest(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = ("link:" + os.readlink(p) if p.is_symlink()
                                             else hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def first_start(d: Driver) -> None:
    t0 = time.monotonic()
    d.fact("start_rc", sh("systemctl", "start", "previewd").returncode)
    healthy = d.wait_healthy()
    d.fact("healthz_after", None if healthy is None else round(time.monotonic() - t0, 1))
    d.fact("active", sh("systemctl", "is-active", "previewd").stdout.strip())
    pid = sh("systemctl", "show", "-p", "MainPID", "--value", "previewd").stdout.strip()
    d.fact("main_user", sh("ps", "-o", "user=", "-p", pid).stdout.strip())
    d.fact("main_cgroup", Path(f"/proc/{pid}/cgroup").read_text().strip().split(":", 2)[2])
    d.fact("subtree_control", (UNIT_CGROUP / "cgroup.subtree_control").read_text().split())
    d.fact("delegated_owner", sh("stat", "-c", "%U", str(UNIT_CGROUP / "cgroup.procs")).stdout.strip())
    status, body = d.request("GET", "/healthz?detail=1")
    d.fact("isolation", json.loads(body).get("isolation") if status == 200 else f"{status} {body[:300]!r}")


def plant_canaries(_d: Driver) -> None:
    """A secret in the data dir owned by the daemon's own uid (so only the build's view keeps it out) and one
    outside, root's."""
    canary = DATA / "canary.txt"
    canary.write_text(CANARY + "\n")
    canary.chmod(0o600)
    shutil.chown(canary, "previewd", "previewd")
    Path("/root/outside.txt").write_text(CANARY + "\n")


def builds_and_attacks(d: Driver) -> None:
    victim = d.build("alice", "site", "victim")
    d.fact("victim_build", {k: victim.get(k) for k in ("status", "failureReason", "seconds")})
    if victim["status"] != "deployed":
        d.fact("victim_log", d.log(victim["versionId"])[-3000:])
        return
    d.fact("victim_page", d.page("alice", "site"))
    work = DATA / "projects" / "alice" / "site"
    d.fact("victim_tree_owner", sh("stat", "-c", "%U", str(work)).stdout.strip())
    before = {"work": digest(work / "work"), "repo": digest(work / "repo.git")} if work.is_dir() else {}
    d.fact("victim_dir_found", work.is_dir())

    hostile = d.build("mallory", "evil", "hostile")
    log = d.log(hostile["versionId"])
    d.fact("hostile_build", {k: hostile.get(k) for k in ("status", "failureReason", "seconds")})
    d.fact("hostile_answers", lines(log))
    if not lines(log):
        d.fact("hostile_log", log[-3000:])
    leaks: dict[str, str] = {}
    if hostile["status"] == "deployed":
        for path in ("/shadow.txt", "/canary.txt", "/data/canary.txt", "/outside.txt"):
            status, text = d.page("mallory", "evil", path)
            leaks[path] = f"{status} {'LEAKED' if CANARY in text or 'root:' in text else 'clean'}"
    d.fact("hostile_link_fetches", leaks)
    after = {"work": digest(work / "work"), "repo": digest(work / "repo.git")} if work.is_dir() else {}
    d.fact("victim_tree_unchanged", before == after)
    d.fact("poison_files", [str(p) for p in DATA.rglob("poison")])
    d.fact("planted_link", os.path.lexists(DATA / "projects" / "mallory" / "m9"))

    hog = d.build("mallory", "hog", "hog")
    d.fact("hog_build", {k: hog.get(k) for k in ("status", "failureReason", "seconds")})
    d.fact("hog_log_tail", "\n".join(d.log(hog["versionId"]).splitlines()[-6:]))


def stop_during_build(d: Driver) -> None:
    queued = d.build("mallory", "slow", "slow", wait=False)
    vid = queued["versionId"]
    d.fact("slow_version", vid)
    pid = find_pid("sleep 3600", give_up=lambda: d.json("GET", f"/versions/{vid}")["status"] == "failed")
    d.fact("slow_sleep_seen", pid is not None)
    if pid is not None:
        d.fact("slow_sleep_user", sh("ps", "-o", "user=", "-p", str(pid)).stdout.strip())
        cgroup = Path(f"/proc/{pid}/cgroup").read_text().strip().split(":", 2)[2]
        d.fact("slow_cgroup", cgroup)
        leaf = Path("/sys/fs/cgroup") / cgroup.lstrip("/")
        for up in [leaf, *leaf.parents]:  # the build's own group holds its limits (its steps may have leaves)
            if (up / "memory.max").exists() and up.name.startswith("build-"):
                d.fact("slow_limits", {f: (up / f).read_text().strip() for f in ("memory.max", "pids.max")})
                break
    t0 = time.monotonic()
    d.fact("stop_rc", sh("systemctl", "stop", "previewd").returncode)
    d.fact("stop_seconds", round(time.monotonic() - t0, 1))
    d.fact("after_stop", sh("systemctl", "is-active", "previewd").stdout.strip())
    d.fact("leftover_procs", unit_procs())
    d.fact("leftover_named", sh("pgrep", "-u", "previewd").stdout.split())
    d.fact("sleep_alive", pid is not None and Path(f"/proc/{pid}").exists())

    t0 = time.monotonic()
    d.fact("restart_rc", sh("systemctl", "start", "previewd").returncode)
    healthy = d.wait_healthy()
    d.fact("restart_healthz_after", None if healthy is None else round(time.monotonic() - t0, 1))
    if healthy is None:
        return
    v = d.json("GET", f"/versions/{vid}")
    d.fact("slow_after_restart", {"status": v["status"], "failureReason": v.get("failureReason")})
    again = d.build("alice", "site2", "victim")
    d.fact("after_restart_build", {k: again.get(k) for k in ("status", "failureReason", "seconds")})
    if again["status"] == "deployed":
        d.fact("after_restart_page", d.page("alice", "site2"))


def main(io: Path) -> int:
    env = dict(line.split("=", 1) for line in Path("/etc/previewd/env").read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    d = Driver(io, env["PREVIEWD_HMAC_SECRET"])
    for step in (first_start, plant_canaries, builds_and_attacks, stop_during_build):
        t0 = time.monotonic()
        try:
            step(d)
        except Exception as err:  # the facts say where it stopped; the tests name what is missing
            d.fact(f"{step.__name__}_error", repr(err)[:2000])
        d.fact(f"{step.__name__}_seconds", round(time.monotonic() - t0, 1))
    journal = sh("journalctl", "-u", "previewd", "-o", "cat", "--no-pager").stdout
    (io / "journal.txt").write_text(journal)
    sh("systemctl", "stop", "previewd")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
