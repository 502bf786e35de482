"""The build burst: 100 concurrent build requests over 20 projects and 10 users, and what the rules allow of them.

Shared by `bench/load.py` (figures) and `tests/drills/test_burst.py` (the same checks as a test). Every request is
sent with `wait=false`, so an accepted build answers 202 at once. Three client addresses on loopback:

- the backend (127.0.0.3): 90 requests. u0 asks for 7 new projects twice each (its cap is 5 new projects an
  hour); u1-u4 ask for 2 new projects 6 times each, u5-u7 for 1 new project 4 times each; u8/r0 and u9/r1
  (built during setup) get 8 rebuild requests each, r0 with its hourly rebuild cap already used up and r1 with
  one rebuild left.
- a noisy client (127.0.0.4) that already made 95 signed requests this hour sends 10 new-project requests for
  u8/r0, which exists: 5 pass the per-IP cap and are refused as 409 project_exists, 5 get 429.
- setup (127.0.0.2): the two first builds.

Caps used before the burst are written as rate events (what a restart reads back), not replayed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from daemon.core.db import utcnow
from tests.support import auth

SETUP_IP = "127.0.0.2"
BACKEND_IP = "127.0.0.3"
NOISY_IP = "127.0.0.4"
NOISY_USED = 95
JSON = {"content-type": "application/json"}


@dataclass
class Req:
    """One planned request and its answer."""

    ip: str
    path: str
    user: str
    project: str
    group: str
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        err = self.body.get("error")
        return err.get("code") if isinstance(err, dict) else None


def plan(seed: int = 7) -> list[Req]:
    """The 100 requests, shuffled so duplicates interleave."""
    new, re_ = "/build-preview-for-new-project", "/rebuild-preview"
    reqs: list[Req] = []
    for i in range(7):
        reqs += [Req(BACKEND_IP, new, "u0", f"a{i}", "u0-new")] * 2
    for u in range(1, 5):
        for k in range(2):
            reqs += [Req(BACKEND_IP, new, f"u{u}", f"b{u}{k}", "new")] * 6
    for u in range(5, 8):
        reqs += [Req(BACKEND_IP, new, f"u{u}", f"c{u}", "new")] * 4
    reqs += [Req(BACKEND_IP, re_, "u8", "r0", "rebuild-capped")] * 8
    reqs += [Req(BACKEND_IP, re_, "u9", "r1", "rebuild-last")] * 8
    reqs += [Req(NOISY_IP, new, "u8", "r0", "noisy-ip")] * 10
    reqs = [Req(r.ip, r.path, r.user, r.project, r.group) for r in reqs]  # distinct objects
    random.Random(seed).shuffle(reqs)
    return reqs


def seed_caps(data_dir: Path) -> None:
    """Rate events as if the hour had already happened: r0's 20 rebuilds, 19 of r1's, 95 of the noisy IP."""
    now = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = ([("project-rebuild:u8:r0", now)] * 20 + [("project-rebuild:u9:r1", now)] * 19
            + [(f"ip:{NOISY_IP}", now)] * NOISY_USED)
    conn = sqlite3.connect(str(data_dir / "state.db"), timeout=30)
    try:
        with conn:
            conn.executemany("INSERT INTO rateevent (bucket, at) VALUES (?, ?)", rows)
    finally:
        conn.close()


def _client(base: str, ip: str, conns: int) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=ip, limits=httpx.Limits(max_connections=conns))
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=120, trust_env=False, auth=auth())


async def _send(client: httpx.AsyncClient, r: Req, start: asyncio.Event) -> None:
    payload: dict[str, Any] = {"userId": r.user, "projectId": r.project, "prompt": f"burst {r.user} {r.project}"}
    body = json.dumps(payload).encode()
    await start.wait()
    resp = await client.post(r.path, content=body, headers=JSON, params={"wait": "false"})
    r.status = resp.status_code
    try:
        r.body = resp.json()
    except ValueError:
        r.body = {"raw": resp.text[:200]}


async def fire(base: str, reqs: list[Req]) -> float:
    """Send every request at once (one connection each); returns the seconds until the last answer."""
    clients = {ip: _client(base, ip, 100) for ip in {r.ip for r in reqs}}
    start = asyncio.Event()
    try:
        tasks = [asyncio.create_task(_send(clients[r.ip], r, start)) for r in reqs]
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        start.set()
        await asyncio.gather(*tasks)
        return time.monotonic() - t0
    finally:
        for c in clients.values():
            await c.aclose()


def setup(base: str) -> list[str]:
    """Build u8/r0 and u9/r1 (waiting for each); returns their version ids."""
    ids = []
    with httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=SETUP_IP), timeout=300,
                      trust_env=False, auth=auth()) as c:
        for user, proj in (("u8", "r0"), ("u9", "r1")):
            body = json.dumps({"userId": user, "projectId": proj, "prompt": "setup"}).encode()
            r = c.post("/build-preview-for-new-project", content=body, headers=JSON)
            data = r.json()
            if r.status_code != 200 or data.get("success") is not True:
                raise RuntimeError(f"setup build of {user}/{proj} failed: {r.status_code} {data}")
            ids.append(data["versionId"])
    return ids


def expected_problems(reqs: list[Req]) -> tuple[Counter[str], list[str]]:
    """Compare answers with what the rules allow; returns (status counts, problems)."""
    problems: list[str] = []
    counts = Counter(str(r.status) for r in reqs)
    groups: dict[str, list[Req]] = {}
    for r in reqs:
        groups.setdefault(r.group, []).append(r)
        if r.status >= 500 or r.status not in (202, 409, 429):
            problems.append(f"{r.group} {r.user}/{r.project}: unexpected {r.status} {r.body}")

    def tally(group: str) -> Counter[int]:
        return Counter(r.status for r in groups[group])

    u0 = tally("u0-new")
    if u0 != Counter({202: 5, 409: 5, 429: 4}):
        problems.append(f"u0 (7 new projects, cap 5): {dict(u0)} != 202x5 409x5 429x4")
    u0_accepted = {r.project for r in groups["u0-new"] if r.status == 202}
    for r in groups["u0-new"]:
        if r.status == 409 and r.project not in u0_accepted:
            problems.append(f"u0/{r.project} refused 409 but never accepted")
        if r.status == 429 and r.project in u0_accepted:
            problems.append(f"u0/{r.project} refused 429 though accepted once")
    per_project: dict[str, Counter[int]] = {}
    for r in groups["new"]:
        per_project.setdefault(r.project, Counter())[r.status] += 1
    for proj, c in sorted(per_project.items()):
        if c[202] != 1 or c[429] or c[202] + c[409] != sum(c.values()):
            problems.append(f"{proj}: {dict(c)}; want one 202 and the rest 409")
    capped = tally("rebuild-capped")
    if capped != Counter({429: 8}):
        problems.append(f"r0 (rebuild cap used up): {dict(capped)} != 429x8")
    last = tally("rebuild-last")
    if last[202] != 1 or last[202] + last[409] + last[429] != 8:
        problems.append(f"r1 (one rebuild left): {dict(last)}; want one 202, the rest 409/429")
    noisy = tally("noisy-ip")
    if noisy != Counter({409: 100 - NOISY_USED, 429: 10 - (100 - NOISY_USED)}):
        problems.append(f"noisy IP (95 of 100 used): {dict(noisy)} != 409x5 429x5")
    for r in reqs:
        if r.status == 429 and not r.body.get("error", {}).get("message"):
            problems.append(f"429 without a message: {r.body}")
        if r.status == 409 and r.code not in ("build_in_flight", "project_exists"):
            problems.append(f"409 with code {r.code}")
    return counts, problems


def accepted_ids(reqs: list[Req]) -> list[str]:
    return [str(r.body["versionId"]) for r in reqs if r.status == 202]


def wait_terminal(base: str, version_ids: list[str], timeout: float = 600) -> dict[str, dict[str, Any]]:
    """Poll until every version is deployed or failed; returns their rows as the API shows them."""
    out: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=30, trust_env=False, auth=auth()) as c:
        pending = list(version_ids)
        while pending and time.monotonic() < deadline:
            still = []
            for vid in pending:
                v = c.get(f"/versions/{vid}").json()
                if v.get("status") in ("deployed", "failed"):
                    out[vid] = v
                else:
                    still.append(vid)
            pending = still
            if pending:
                time.sleep(0.5)
    return out


def rows_problems(data_dir: Path, accepted: list[str], setup_ids: list[str],
                  finished: dict[str, dict[str, Any]]) -> list[str]:
    """No version lost or duplicated: the database holds exactly the setup and accepted versions, each finished."""
    problems = []
    for vid in accepted:
        v = finished.get(vid)
        if v is None:
            problems.append(f"{vid} never finished")
        elif v["status"] == "failed" and not v.get("failureReason"):
            problems.append(f"{vid} failed without a reason")
    if len(set(accepted)) != len(accepted):
        problems.append("one version id answered twice")
    conn = sqlite3.connect(str(data_dir / "state.db"), timeout=30)
    try:
        rows = conn.execute("SELECT version_id, user_id, project_id, kind FROM project_versions").fetchall()
    finally:
        conn.close()
    ids = [r[0] for r in rows]
    if sorted(ids) != sorted(accepted + setup_ids):
        problems.append(f"rows {len(ids)} != accepted {len(accepted)} + setup {len(setup_ids)}; "
                        f"extra {sorted(set(ids) - set(accepted) - set(setup_ids))}, "
                        f"lost {sorted(set(accepted) - set(ids))}")
    per_project = Counter((r[1], r[2]) for r in rows if r[3] == "new")
    dup = {k: n for k, n in per_project.items() if n != 1}
    if dup:
        problems.append(f"projects with more than one first build: {dup}")
    return problems
