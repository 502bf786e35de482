"""The pointer-read fast path answers exactly what the Litestar handler answers, and steps aside otherwise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.api.fastpath import PointerFastPath
from daemon.cli.serve import Daemon

PTR = {"latestVersionId": "01M8APDVZAFRCJTN5PB7V16N18", "previewUrl": "http://p-x.localhost:8080/", "timestamp": 17}


def _call(app: Any, path: str, method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8080")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080)}
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    asyncio.run(app(scope, receive, send))
    start = out[0]
    body = b"".join(m.get("body", b"") for m in out[1:])
    return start["status"], dict(start["headers"]), body


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon(render={"enabled": False})


def test_same_bytes_as_the_handler(daemon: Daemon) -> None:
    daemon.rt.kv.put("u:p", json.dumps(PTR).encode())
    fast = _call(daemon.asgi, "/projects/u/p/preview")
    slow = _call(daemon.app, "/projects/u/p/preview")
    assert fast[0] == slow[0] == 200
    assert fast[2] == slow[2] and json.loads(fast[2]) == PTR
    assert fast[1][b"content-type"] == slow[1][b"content-type"]
    assert fast[1][b"content-length"] == slow[1][b"content-length"]
    assert b"x-request-id" in fast[1]


@pytest.mark.parametrize(("path", "method", "status"), [
    ("/projects/u/missing/preview", "GET", 404),   # no pointer: the handler (then the DB) answers
    ("/projects/u/p/preview", "POST", 405),        # another method
    ("/projects/u/p/preview/", "GET", 200),        # not exactly the route: Litestar's slash rule answers
    ("/projects/u/p\n/preview", "GET", 400),       # an id the route refuses
])
def test_falls_through(daemon: Daemon, path: str, method: str, status: int) -> None:
    daemon.rt.kv.put("u:p", json.dumps(PTR).encode())
    got = _call(daemon.asgi, path, method)
    assert got[0] == status, got
    assert got[0] == _call(daemon.app, path, method)[0]


def test_not_a_pointer_falls_through(daemon: Daemon) -> None:
    daemon.rt.kv.put("u:p", b'{"something": "else"}')
    assert _call(daemon.asgi, "/projects/u/p/preview")[0] == 404


def test_busy_kv_falls_through(daemon: Daemon) -> None:
    """A KV read that would wait (another thread holds the read connection) goes to the handler's thread."""
    daemon.rt.kv.put("u:p", json.dumps(PTR).encode())
    seen: list[str] = []
    inner = daemon.app

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await inner(scope, receive, send)

    app = PointerFastPath(spy, daemon.services.publisher)
    lock = daemon.rt.kv._read_lock  # type: ignore[attr-defined]
    with lock:
        status, _, body = _call(app, "/projects/u/p/preview")
    assert status == 200 and json.loads(body) == PTR
    assert seen == ["/projects/u/p/preview"]
    seen.clear()
    assert _call(app, "/projects/u/p/preview")[0] == 200 and seen == []


def test_nowait_cache_follows_writes_and_expiry(tmp_path: Path) -> None:
    from sync.kv import LocalKV
    from tests.integration.sync.support import ManualClock

    clock = ManualClock()
    kv = LocalKV(tmp_path / "kv.db", clock=clock)
    assert kv.get_nowait("u:p") is None          # a miss is cached too...
    kv.put("u:p", b"v1", ttl_seconds=60)
    assert kv.get_nowait("u:p") == b"v1"         # ...and dropped by the write
    kv.put("u:p", b"v2", ttl_seconds=60)
    assert kv.get_nowait("u:p") == b"v2" == kv.get("u:p")
    clock.advance(61)
    assert kv.get_nowait("u:p") is None and kv.get("u:p") is None
    kv.put("u:p", b"v3")
    assert kv.get_nowait("u:p") == b"v3"
    kv.delete("u:p")
    assert kv.get_nowait("u:p") is None
    kv.close()


def test_nowait_does_not_cache_a_read_a_write_overtook(tmp_path: Path) -> None:
    """A write that lands while a read is in SQLite: the read's (old) answer must not be cached."""
    from sync.kv import LocalKV

    kv = LocalKV(tmp_path / "kv.db")
    kv.put("u:p", b"old")
    class Racing:
        """A read connection that lets a write commit between the read and its caching."""

        def __init__(self) -> None:
            import sqlite3

            self.conn = sqlite3.connect(str(tmp_path / "kv.db"), isolation_level=None, check_same_thread=False)

        def execute(self, *args: Any) -> Any:
            cur = self.conn.execute(*args)
            rows = cur.fetchall()
            kv._forget("u:p")  # type: ignore[attr-defined]  # what put() does after its commit
            return _Rows(rows)

    class _Rows:
        def __init__(self, rows: list[Any]) -> None:
            self.rows = rows

        def fetchone(self) -> Any:
            return self.rows[0] if self.rows else None

    kv._read_conn = Racing()  # type: ignore[attr-defined,assignment]
    assert kv.get_nowait("u:p") == b"old"
    assert "u:p" not in kv._hot  # type: ignore[attr-defined]
