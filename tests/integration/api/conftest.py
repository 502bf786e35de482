"""Fixtures for the API's auth and bounds tests: daemons with extra config, one served by uvicorn for streams."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from daemon.cli.serve import Daemon
from daemon.core.db import ProjectVersion
from daemon.core.signing import mint_token
from tests.support import TEST_SECRET, free_port, make_config


def token_for(user: str, project: str, ttl: int = 600, *, secret: str = TEST_SECRET) -> str:
    """A read token minted the way an app server does it (README: read tokens)."""
    return mint_token(secret, user, project, int(time.time()) + ttl)


def add_version(d: Daemon, user: str, project: str, *, status: str = "failed", log: str = "") -> str:
    """A version row (and its stored log) without building anything."""
    vid = str(ULID())
    ProjectVersion.create(version_id=vid, user_id=user, project_id=project, prompt=f"secret prompt of {user}",
                          status=status)
    if log:
        d.rt.layout.log_path(vid).write_text(log)
    return vid


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Daemons (worker not started) on one temp data dir, with config text or sections and an environment;
    closed at the end (one at a time: a daemon holds the data dir, so a restart closes the first one)."""
    made: list[Daemon] = []

    def make(text: str = "", *, env: dict[str, str] | None = None, **sections: dict[str, Any]) -> Daemon:
        d = Daemon(make_config(tmp_path, text, env=env, **sections))
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


class Served:
    """A daemon's ASGI stack under a real uvicorn on loopback (in a thread), for streams and many connections."""

    def __init__(self, d: Daemon) -> None:
        import uvicorn

        self.d = d
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(d.asgi, host="127.0.0.1", port=self.port, lifespan="on",
                                                    log_config=None, access_log=False, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(20)
