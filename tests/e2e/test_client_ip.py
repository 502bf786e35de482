"""The per-IP cap counts the socket's peer unless a trusted proxy is configured: a caller cannot pick its IP."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.live import LiveDaemon


def _hits(d: LiveDaemon, n: int) -> list[int]:
    codes = []
    for i in range(n):
        body = json.dumps({"nope": i}).encode()
        headers = {"content-type": "application/json", "x-forwarded-for": f"203.0.113.{i}"}  # d.http signs (v2)
        codes.append(d.http.post(d.base + "/build-preview-for-new-project", content=body, headers=headers).status_code)
    return codes


def test_forwarded_for_is_ignored_by_default(tmp_path: Path) -> None:
    d = LiveDaemon(tmp_path, "[rate_limits]\nper_ip_per_hour = 2\n").start()
    try:
        assert _hits(d, 3) == [400, 400, 429]
    finally:
        d.stop()


def test_forwarded_for_is_used_behind_a_trusted_proxy(tmp_path: Path) -> None:
    d = LiveDaemon(tmp_path, "[rate_limits]\nper_ip_per_hour = 2\n")
    d.config.write_text(d.config.read_text().replace("[server]\n", '[server]\nforwarded_allow_ips = "127.0.0.1"\n', 1))
    d.start()
    try:
        assert _hits(d, 3) == [400, 400, 400]  # three different clients behind the proxy
    finally:
        d.stop()
