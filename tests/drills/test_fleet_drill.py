"""The fleet drill (issue 16): three droplets on their own data dirs share one Postgres schema, one S3 bucket
(moto) and one KV (the loopback fake). Six client threads send ~60 builds, rebuilds, rollbacks and undos to
random droplets; one droplet is SIGKILLed mid-build, another SIGSTOPped (with its build processes) past the lease
TTL and resumed. Then: every accepted version is in Postgres once and final; no project ever had two builds
running at once (build-log stamps); every deployed preview is served by every live droplet; each project
restores on an empty data dir with every tag; each KV pointer equals Postgres' live version; the stopped
droplet's stale writes were refused and counted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.drills.fleet_support import Fleet, fleet_of
from tests.drills.support import Drill, git_tags
from tests.support import wait_until

USER = "u"
PROJECTS = [f"p{i}" for i in range(6)]
OPS_PER_PROJECT = 10
STAMP = re.compile(r"^\[previewd (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})Z\] (.*)$")


class Client:
    """Sends a project's requests to random live droplets, following `project_elsewhere` to the holder."""

    def __init__(self, fleet: Fleet, seed: int) -> None:
        self.fleet = fleet
        self.rng = random.Random(seed)
        self.live: dict[str, Drill] = {}
        self.accepted: dict[str, tuple[str, str]] = {}  # version -> (project, droplet)
        self.lock = threading.Lock()
        self.conflicts = 0

    def send(self, project: str, path: str, payload: dict[str, Any], **params: str) -> dict[str, Any] | None:
        """The accepted answer, or None for a refusal that retrying cannot change (nothing to undo)."""
        prefer: str | None = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with self.lock:
                names = sorted(self.live)
            name = prefer if prefer in names else self.rng.choice(names)
            prefer = None
            try:
                r = self.live[name].post(path, payload, **params) if name in self.live else None
            except (httpx.HTTPError, KeyError):
                r = None
            if r is None:
                time.sleep(0.2)
                continue
            if r.status_code in (200, 202):
                body: dict[str, Any] = r.json()
                if body.get("versionId") and path != f"/projects/{USER}/{project}/undo":
                    with self.lock:
                        self.accepted[body["versionId"]] = (project, name)
                return body
            err = r.json().get("error", {})
            if err.get("code") in ("nothing_to_undo", "nothing_to_redo", "base_not_deployed", "base_not_found"):
                return None
            if err.get("code") == "project_elsewhere":
                self.conflicts += 1
                prefer = err.get("holder")
                time.sleep(0.1 if prefer in self.live else 0.3)
                continue
            if r.status_code in (409, 503):  # a build in flight, a lease mid-move, Postgres busy
                time.sleep(0.2)
                continue
            raise AssertionError(f"{path} on {name}: {r.status_code} {r.text}")
        raise AssertionError(f"{path} for {project}: no droplet accepted it in 90 s")

    def settle(self, version_id: str, timeout: float = 60) -> str | None:
        """Wait until Postgres shows the version final (its droplet may die first: then stop waiting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.fleet.pg("SELECT status::text FROM {s}.project_versions WHERE version_id = %s", version_id)
            if rows and rows[0][0] in ("deployed", "failed"):
                return str(rows[0][0])
            with self.lock:
                owner = self.accepted.get(version_id, ("", ""))[1]
                if owner and owner not in self.live:
                    return None
            time.sleep(0.1)
        raise AssertionError(f"{version_id} never became final")


def _tree_pids(pid: int) -> list[int]:
    try:
        proc = psutil.Process(pid)
        return [pid, *(c.pid for c in proc.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def _spans(droplets: list[Drill], accepted: dict[str, tuple[str, str]]) -> dict[str, list[tuple[float, float, str]]]:
    """Per project, each build's (start, end, version) from its build-log stamps. A build failed because its
    droplet lost the lease ends at its last stamp before that failure (it stopped while paused); one refused
    before its first step is no build."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for d in droplets:
        for log in (d.data_dir / "logs").glob("*.log"):
            vid = log.stem
            if vid not in accepted:
                continue
            stamps = []
            for line in log.read_text(errors="replace").splitlines():
                m = STAMP.match(line)
                if m:
                    t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
                    stamps.append((t, m.group(2)))
            # a build refused or stopped for want of the lease ends before that refusal: it stopped there (paused)
            # or never ran (its droplet resumed to find the project taken: one failure line, no step)
            if stamps and ("lost the lease" in stamps[-1][1] or "cannot build the project now" in stamps[-1][1]):
                stamps.pop()
            if len(stamps) > 1:
                out.setdefault(accepted[vid][0], []).append((stamps[0][0], stamps[-1][0], f"{d.tmp.name}:{vid}"))
    return out


def test_fleet_drill(tmp_path: Path, moto_endpoint: str) -> None:
    with fleet_of(tmp_path, moto_endpoint, ttl_s=3.0, release_idle_s=0.3) as fleet:
        drops = [fleet.droplet(f"drop-{i}") for i in range(3)]
        client = Client(fleet, seed=16)
        client.live = {d.tmp.name: d for d in drops}
        strike: dict[str, threading.Event] = {"kill": threading.Event(), "stop": threading.Event()}
        struck: dict[str, threading.Event] = {"kill": threading.Event(), "stop": threading.Event()}
        target: dict[str, tuple[str, str]] = {}
        errors: list[BaseException] = []

        def run_project(i: int, project: str) -> None:
            rng = random.Random(i)
            try:
                first = client.send(project, "/build-preview-for-new-project",
                                    {"userId": USER, "projectId": project, "prompt": f"{project} v0"}, wait="false")
                assert first is not None
                client.settle(first["versionId"])
                for n in range(1, OPS_PER_PROJECT):
                    roll = rng.random()
                    chaos = (project == "p5" and n == 3 and "kill") or (project == "p4" and n == 5 and "stop")
                    if chaos:
                        body = client.send(project, "/rebuild-preview", {"userId": USER, "projectId": project,
                                           "prompt": f"slowbuild:3 {project} v{n}"}, wait="false")
                        assert body is not None
                        target[chaos] = (body["versionId"], client.accepted[body["versionId"]][1])
                        strike[chaos].set()
                        assert struck[chaos].wait(60), f"the {chaos} never happened"  # then go on, elsewhere
                    elif roll < 0.55:
                        body = client.send(project, "/rebuild-preview", {"userId": USER, "projectId": project,
                                           "prompt": f"{project} v{n}"}, wait="false")
                    elif roll < 0.75:
                        deployed = [r[0] for r in fleet.pg(
                            "SELECT version_id FROM {s}.project_versions WHERE user_id = %s AND project_id = %s "
                            "AND status = 'deployed'", USER, project)]
                        body = client.send(project, f"/rollback/{rng.choice(deployed)}",
                                           {"userId": USER, "projectId": project}, wait="false") if deployed else None
                    else:
                        body = client.send(project, f"/projects/{USER}/{project}/{rng.choice(['undo', 'redo'])}", {})
                        body = None
                    if body is not None and body.get("versionId"):
                        client.settle(body["versionId"])
            except BaseException as exc:
                errors.append(exc)

        def kill() -> None:
            try:
                assert strike["kill"].wait(120), "the kill cue never came"
                vid, name = target["kill"]
                victim = client.live[name]
                victim.wait_log(vid, "$ ", timeout=60)  # mid-build: a build step has started
                with client.lock:
                    client.live.pop(name)
                victim.kill()
                struck["kill"].set()
            except BaseException as exc:
                errors.append(exc)

        def stop() -> None:
            try:
                assert strike["stop"].wait(120), "the stop cue never came"
                vid, name = target["stop"]
                sleeper = client.live[name]
                sleeper.wait_log(vid, "$ ", timeout=60)
                with client.lock:
                    client.live.pop(name)
                pids = _tree_pids(sleeper.pid)  # the whole droplet pauses: daemon and build processes
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                struck["stop"].set()  # the project's client goes on (to the other droplets) while it sleeps
                try:
                    time.sleep(fleet.ttl_s + 1)
                    # another droplet takes the project over while this one sleeps
                    wait_until(lambda: (fleet.lease(USER, "p4") or ("",))[0] != name, 60,
                               what="p4 taken over from the stopped droplet")
                finally:
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGCONT)
                with client.lock:
                    client.live[name] = sleeper
                target["stopped"] = (vid, name)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run_project, args=(i, p)) for i, p in enumerate(PROJECTS)]
        threads += [threading.Thread(target=kill), threading.Thread(target=stop)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads), "the drill did not finish in 4 minutes"
        live = list(client.live.values())
        assert len(live) == 2 and len(client.accepted) >= 45, (len(live), len(client.accepted))

        # A fresh droplet on an empty data dir takes every project: restores it (finishing what the dead droplet
        # left), with every tag of a deployed version.
        fresh = fleet.droplet("drop-new")
        for p in PROJECTS:
            res = client_restore(fresh, p)
            tags = git_tags(fresh.data_dir / "projects" / USER / p / "repo.git")
            deployed = {r[0] for r in fleet.pg("SELECT version_id FROM {s}.project_versions WHERE user_id = %s AND "
                                               "project_id = %s AND status = 'deployed'", USER, p)}
            assert deployed <= tags, (p, res, sorted(deployed - tags))
        for d in [*live, fresh]:
            wait_until(lambda d=d: not d.sync_flush().get("errors"), 30, what=f"{d.tmp.name} syncing")

        # every accepted version is in Postgres once, in a final state
        rows = fleet.pg("SELECT version_id, status::text, failure_reason FROM {s}.project_versions")
        status = {r[0]: (r[1], r[2]) for r in rows}
        assert len(status) == len(rows)
        missing = sorted(set(client.accepted) - set(status))
        assert not missing, [(v, client.accepted[v], target) for v in missing]
        open_ = {v: s for v, s in status.items() if s[0] not in ("deployed", "failed")}
        assert not open_, open_
        kill_vid, stop_vid = target["kill"][0], target["stopped"][0]
        assert status[kill_vid] == ("failed", "interrupted"), status[kill_vid]
        assert status[stop_vid] == ("failed", "interrupted"), status[stop_vid]

        # no project ever had two builds running at once
        for project, spans in _spans(drops, client.accepted).items():
            spans.sort()
            for (_s1, e1, v1), (s2, _e2, v2) in itertools.pairwise(spans):
                assert s2 >= e1, f"{project}: {v2} started {e1 - s2:.3f}s before {v1} ended"

        # every deployed version's preview is served by every live droplet (fetched from the bucket if need be)
        urls = {v: r[0] for v, r in ((v, fleet.pg("SELECT preview_url FROM {s}.project_versions WHERE "
                                                  "version_id = %s", v)[0]) for v, s in status.items()
                                     if s[0] == "deployed")}
        for vid, url in urls.items():
            for d in [*live, fresh]:
                r = d.preview(url)
                assert r.status_code == 200 and r.text.startswith("<h1>"), (d.tmp.name, vid, r.status_code)

        # each KV pointer equals Postgres' live version (the lease row), and /ops/sync/verify agrees from any droplet
        for p in PROJECTS:
            lease = fleet.lease(USER, p)
            assert lease is not None and lease[2] is not None
            assert fleet.kv_live(USER, p) == lease[2], p
            for d in (live[0], fresh):
                report = d.get("/ops/sync/verify", params={"userId": USER, "projectId": p}).json()
                assert report["count"] == 0 and report["live"] == lease[2], report

        # the stopped droplet's stale writes were refused and counted
        sleeper = client.live[target["stopped"][1]]
        stats = sleeper.get("/ops/fleet").json()
        assert stats["fencingRefusals"] >= 1 and stats["leasesLost"] >= 1, stats
        metrics = sleeper.get("/metrics").text
        assert re.search(r"^previewd_fleet_fencing_refusals [1-9]", metrics, re.M), metrics[-2000:]


def client_restore(d: Drill, project: str) -> dict[str, Any]:
    """Restore (take over and catch up) one project on ``d``, waiting while another droplet still holds it."""
    def attempt() -> dict[str, Any] | None:
        r = d.post(f"/projects/{USER}/{project}/restore", {})
        return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]

    found: dict[str, Any] = wait_until(attempt, 60, interval=0.3, what=f"{project} restored on a fresh droplet")
    return found
