"""A generator that hangs or floods its output: the version fails with a clear reason, the daemon stays well."""

from __future__ import annotations

import psutil

from tests.drills.conftest import Drills


def test_hanging_generator_times_out(drills: Drills) -> None:
    d = drills.daemon(generator_timeout_s=3)
    r = d.build("u", "hang", "hang for an hour")
    assert r["success"] is False and r["error"]["code"] == "generation_failed", r
    assert "timed out after 3 s" in r["error"]["message"]
    drills.finish(d)


def test_flooding_generator_is_stopped(drills: Drills) -> None:
    d = drills.daemon()
    rss_before = psutil.Process(d.pid).memory_info().rss
    r = d.build("u", "flood", "flood 50 MB of output")
    assert r["success"] is False and r["error"]["code"] in ("invalid_output", "generation_failed"), r
    assert "printed more than" in r["error"]["message"] or "JSON" in r["error"]["message"], r
    grown = psutil.Process(d.pid).memory_info().rss - rss_before
    # The cap (max_total_bytes, 20 MB) bounds what is held; 50 MB never is.
    assert grown < 40 * 2**20, f"daemon RSS grew {grown / 2**20:.0f} MiB on a 50 MB flood"
    drills.finish(d)
