"""Bounded streams and answers: SSE caps per IP and in total, streams that wait on the log writer, and caps on
diff, log and screenshot answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.project.buildlog import BuildLog
from daemon.publish import screens
from tests.integration.api.conftest import Served, add_version, token_for
from tests.support import ApiClient, auth


def _events(resp: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) per server-sent event; comments (keepalives) skipped."""
    event, data = "message", []
    for raw in resp.iter_lines():
        if raw == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif raw.startswith(":"):
            continue
        else:
            name, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


# -- SSE ----------------------------------------------------------------------------------------------------------
def test_sse_stream_opened_with_a_token_receives_live_lines(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory()
    vid = add_version(d, "alice", "p1", status="queued")
    token = token_for("alice", "p1")
    got: list[tuple[str, str]] = []

    def build() -> None:  # stands in for the worker: opens the log once the stream waits, writes, finishes
        time.sleep(0.5)
        blog = BuildLog(d.rt.layout.log_path(vid))
        d.rt.live_logs[vid] = blog
        ProjectVersion.update(status="building").where(ProjectVersion.version_id == vid).execute()
        for i in range(3):
            blog.line(f"line {i}")
            time.sleep(0.05)
        ProjectVersion.update(status="deployed").where(ProjectVersion.version_id == vid).execute()
        d.rt.live_logs.pop(vid)
        blog.close()

    with Served(d) as s, httpx.Client(timeout=30) as c:  # no auth on this client: the token alone opens it
        worker = threading.Thread(target=build)
        with c.stream("GET", f"{s.base}/builds/{vid}/logs", params={"token": token}) as resp:
            assert resp.status_code == 200, resp.read()
            worker.start()
            for event, data in _events(resp):
                got.append((event, data))
                if event == "status":
                    break
        worker.join()
    assert got[:3] == [("message", "line 0"), ("message", "line 1"), ("message", "line 2")]
    assert got[-1][0] == "status" and json.loads(got[-1][1])["status"] == "deployed"


def test_sse_waits_on_the_log_writer_not_by_polling(daemon_factory: Callable[..., Daemon],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    d = daemon_factory()
    vid = add_version(d, "alice", "p1", status="queued")
    reads = []
    real = versions.get

    def counting(version_id: str) -> ProjectVersion:
        reads.append(time.monotonic())
        return real(version_id)

    monkeypatch.setattr(versions, "get", counting)
    with Served(d) as s, httpx.Client(timeout=30, auth=auth()) as c, \
            c.stream("GET", f"{s.base}/builds/{vid}/logs") as resp:
        assert resp.status_code == 200
        time.sleep(1.5)  # the build is queued: a polling stream would read the row ~7 times by now
        waiting = len(reads)
        t0 = time.monotonic()
        blog = BuildLog(d.rt.layout.log_path(vid))
        d.rt.live_logs[vid] = blog  # the worker opens the log: the stream must wake at once
        blog.line("first")
        lines = _events(resp)
        assert next(lines) == ("message", "first")
        woke_in = time.monotonic() - t0
        d.rt.live_logs.pop(vid)
        blog.close()
    assert waiting <= 2, f"the stream read the version {waiting} times while it waited"
    assert woke_in < 1.0


def test_sse_cap_per_ip(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"sse_max_streams": 10, "sse_max_streams_per_ip": 2})
    vid = add_version(d, "alice", "p1", status="queued")  # a queued build's stream stays open (no worker)
    with Served(d) as s, httpx.Client(timeout=30, auth=auth()) as c:
        url = f"{s.base}/builds/{vid}/logs"
        with c.stream("GET", url) as one, c.stream("GET", url) as two:
            assert one.status_code == two.status_code == 200
            third = c.get(url)
            assert third.status_code == 503 and int(third.headers["retry-after"]) >= 1
            assert third.json()["error"]["code"] == "too_many_streams"
            assert d.services.logs.slots.open == 2
        deadline = time.monotonic() + 10  # closed streams give their places back
        while d.services.logs.slots.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.services.logs.slots.open == 0
        with c.stream("GET", url) as again:
            assert again.status_code == 200


def test_sse_cap_in_total(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"sse_max_streams": 2, "sse_max_streams_per_ip": 5})
    vid = add_version(d, "alice", "p1", status="queued")
    with Served(d) as s, httpx.Client(timeout=30, auth=auth()) as c:
        url = f"{s.base}/builds/{vid}/logs"
        with c.stream("GET", url) as one, c.stream("GET", url) as two:
            assert one.status_code == two.status_code == 200
            third = c.get(url)
            assert third.status_code == 503 and "retry-after" in third.headers
            assert third.json()["error"]["cap"] == "total"
        metrics_text = c.get(f"{s.base}/metrics").text
    assert 'previewd_sse_refused_total{cap="total"} 1.0' in metrics_text


# -- answer caps --------------------------------------------------------------------------------------------------
def _snapshotted(d: Daemon, files: list[dict[str, str]]) -> list[str]:
    """Deployed versions of alice/p1, one per entry of files (path -> content), each a real git snapshot."""
    ids: list[str] = []
    ws = d.rt.layout.workspace("alice", "p1")
    repo = d.rt.repo("alice", "p1")
    for content in files:
        vid = add_version(d, "alice", "p1", status="deployed")
        for name, text in content.items():
            (ws / name).write_text(text)
        repo.snapshot(ws, vid, ids[-1] if ids else None, f"version {vid}")
        ids.append(vid)
    return ids


def test_diff_cap_answers_413_naming_mode_stat(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"max_diff_bytes": 4096})
    a, b = _snapshotted(d, [{"big.txt": "old\n" * 10}, {"big.txt": "".join(f"new line {i}\n" for i in range(2000))}])
    with TestClient(d.app) as tc:
        c = ApiClient(tc)
        r = c.get(f"/versions/{a}/diff/{b}", params={"mode": "patch"})
        assert r.status_code == 413, r.text[:300]
        err = r.json()["error"]
        assert err["code"] == "answer_too_large" and "mode=stat" in err["message"] and err["limit"] == 4096
        stat = c.get(f"/versions/{a}/diff/{b}", params={"mode": "stat"})
        assert stat.status_code == 200 and stat.json()["insertions"] == 2000
        d.cfg.server.max_diff_bytes = 1_000_000
        assert c.get(f"/versions/{a}/diff/{b}", params={"mode": "patch"}).status_code == 200


def test_log_answer_is_capped_to_its_last_lines(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"max_log_bytes": 1024})
    text = "".join(f"log line {i:05d}\n" for i in range(1000))
    vid = add_version(d, "alice", "p1", log=text)
    with TestClient(d.app) as tc:
        r = ApiClient(tc).get(f"/versions/{vid}/log")
    assert r.status_code == 200
    assert len(r.content) <= 1024
    assert r.text.endswith("log line 00999\n") and r.text.startswith("log line ")  # whole lines only
    assert r.headers["x-log-truncated"] == str(len(text))


def test_screenshot_answer_is_capped(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(server={"max_screenshot_bytes": 2048})
    vid = add_version(d, "alice", "p1", status="deployed")
    key = screens.screen_key(ProjectVersion.get_by_id(vid), "desktop")
    path = d.rt.layout.local_object(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 4096)
    with TestClient(d.app) as tc:
        c = ApiClient(tc)
        r = c.get(f"/versions/{vid}/screenshot")
        assert r.status_code == 413 and r.json()["error"]["code"] == "answer_too_large"
        d.cfg.server.max_screenshot_bytes = 1_000_000
        ok = c.get(f"/versions/{vid}/screenshot", params={"token": token_for("alice", "p1")}, sign_it=False)
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
