"""Benchmark: admission overhead of plans and quotas on the build request path (issue 19; target p50 <= 2 ms added).

Usage: .venv/bin/python bench/quotas.py [--requests 400] [--history 500] [--users 200]

One in-process daemon (worker not started: admitted builds stay queued, then are failed untimed so the user
never has many in flight) answers signed `POST /build-preview-for-new-project?wait=false` through Litestar's
test client: signature, nonce, rate caps, the IMMEDIATE admission transaction, the insert, the enqueue. Three
modes are interleaved request by request in the same run, on the same database:
  before  admission as it was before this issue (rate cap only, no meter row)
  off     no [plans]: the meter row is written, no quota is checked (today's default)
  on      a plan with every quota set: the plan lookup, the month's SUM over the user's meter rows, the storage
          gauge and the in-flight projects count, inside the transaction
The database holds --users users with 20 builds each this month and the benched user with --history builds,
so the SUM is over a realistic month. Prints p50/p90 per mode and the differences; no assertion on timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from litestar.testing import TestClient  # noqa: E402

from daemon.core import quotas, ratelimit, versions  # noqa: E402
from daemon.core.config import PlanConfig  # noqa: E402
from daemon.core.db import database, utcnow  # noqa: E402
from daemon.intake import submit  # noqa: E402
from tests.support import ApiClient, in_process_daemon  # noqa: E402

CONFIG = """
[rate_limits]
per_ip_per_hour = 100000000
new_projects_per_user_per_hour = 100000000
"""
BIG = 10**12


def seed(users: int, history: int) -> None:
    """Meter rows for this month: `users` other users with 20 builds each, and u0 with `history` builds."""
    month, now = quotas.current_month(), utcnow()
    rows = [(f"seed{u:05d}{i:03d}".ljust(26, "0"), f"user{u}", f"p{i}", month, 1.5, 1000, now)
            for u in range(users) for i in range(20)]
    rows += [(f"mine{i:05d}".ljust(26, "0"), "u0", f"h{i}", month, 2.0, 5000, now) for i in range(history)]
    with database.atomic():
        database.execute_sql("SELECT 1")
        database.connection().executemany(
            "INSERT INTO build_usage (version_id, user_id, project_id, month, plan, kind, cpu_seconds, stored_bytes, "
            "pages_deployment, finished, created_at, row_version) VALUES (?, ?, ?, ?, 'pro', 'new', ?, ?, 0, 1, ?, 1)",
            rows)


def before_admission(rt: Any, user_id: str, project_id: str, kind: str, org_id: str | None = None) -> Any:
    """The admission of the code before this issue: the rate cap alone, no meter row."""
    cap = rt.cfg.rate_limits.new_projects_per_user_per_hour
    return (lambda: ratelimit.hit(f"user-new:{user_id}", cap, "new projects per user")), (lambda v: None)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=400, help="requests per mode")
    p.add_argument("--history", type=int, default=500, help="the benched user's builds this month")
    p.add_argument("--users", type=int, default=200, help="other users with 20 builds each this month")
    args = p.parse_args()
    plan = PlanConfig(build_cpu_seconds=float(BIG), builds=BIG, storage_bytes=BIG, pages_deployments=BIG,
                      concurrent_projects=BIG, new_projects_per_user_per_hour=BIG)
    real_admission = submit.admission
    times: dict[str, list[float]] = {"before": [], "off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp, in_process_daemon(Path(tmp), CONFIG, render={"enabled": False}) as d:
        seed(args.users, args.history)
        api = ApiClient(TestClient(d.app).__enter__(), d)
        modes = list(times)
        n = 0
        for i in range(args.requests + 20):  # the first 20 rounds warm up and are not counted
            for mode in modes:
                d.rt.cfg.plans = {"pro": plan} if mode == "on" else {}
                d.rt.cfg.quotas.default_plan = "pro" if mode == "on" else ""
                submit.admission = before_admission if mode == "before" else real_admission  # type: ignore
                n += 1
                t0 = time.perf_counter()
                r = api.post("/build-preview-for-new-project", {"userId": "u0", "projectId": f"b{n}", "prompt": "x"},
                             params={"wait": "false"})
                dt = time.perf_counter() - t0
                if r.status_code != 202:
                    print(f"unexpected answer {r.status_code}: {r.text}")
                    return 1
                # untimed: the build ends, so the user has nothing in flight (as between real requests)
                versions.update(None, r.json()["versionId"], status="failed", failure_reason="build_failed")
                if i >= 20:
                    times[mode].append(dt * 1000)
            modes.reverse()  # alternate the order so no mode always runs right after another
        submit.admission = real_admission
        # The part that runs inside the IMMEDIATE transaction (the write lock is held meanwhile), alone: the
        # transaction's existing first statement (the in-flight check) with and without the quota checks.
        d.rt.cfg.plans, d.rt.cfg.quotas.default_plan = {"pro": plan}, "pro"
        inner: dict[str, list[float]] = {"in-flight check": [], "+ quota checks": []}
        for i in range(4000):
            with_quota = i % 2 == 1
            name, chosen = quotas.plan_for(d.rt.cfg, "u0")  # read before the transaction, as admission does
            t0 = time.perf_counter()
            with database.atomic("IMMEDIATE"):
                versions.in_flight("u0", "nope")
                if with_quota:
                    quotas.check(d.rt.cfg, name, chosen, "u0", "nope")
            inner["+ quota checks" if with_quota else "in-flight check"].append((time.perf_counter() - t0) * 1000)
    p50 = {m: statistics.median(v) for m, v in times.items()}
    p90 = {m: statistics.quantiles(v, n=10)[-1] for m, v in times.items()}
    print(f"build request admission, {args.requests} requests per mode, interleaved; the user has {args.history} "
          f"builds this month, {args.users} other users 20 each")
    for m in times:
        print(f"  {m:6}  p50 {p50[m]:6.2f} ms   p90 {p90[m]:6.2f} ms")
    paired = statistics.median(a - b for a, b in zip(times["on"], times["off"], strict=True))
    print(f"quotas on vs off, paired by round (median of on - off): {paired:+.2f} ms")
    print(f"quotas on vs off:     p50 +{p50['on'] - p50['off']:.2f} ms  (ratio {p50['on'] / p50['off']:.3f})")
    print(f"quotas on vs before:  p50 +{p50['on'] - p50['before']:.2f} ms  (ratio {p50['on'] / p50['before']:.3f}; "
          "meter row + quota checks together)")
    bare, held = (statistics.median(v) for v in inner.values())
    print(f"write lock held: in-flight check alone p50 {bare:.3f} ms, with the quota checks {held:.3f} ms "
          f"(+{held - bare:.3f} ms)")
    print("target: p50 <= 2 ms added")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
