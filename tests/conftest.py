"""Shared fixtures over `tests.support`: in-process daemons on the test's temp dir, the API client, moto's S3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import ApiClient, free_port, in_process_daemon

if TYPE_CHECKING:
    from daemon.cli.serve import Daemon


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on a loopback port, one for the whole session (tests use their own buckets)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Makes in-process daemons (`tests.support.in_process_daemon`) on tmp_path; closes them all at the end.

    ``make_daemon(text="", *, immediate=False, root=tmp_path, **sections)``: one daemon per data dir, so a
    second one needs another ``root``.
    """
    with ExitStack() as stack:
        def make(text: str = "", *, immediate: bool = False, root: Path | None = None,
                 edges: dict[str, Any] | None = None, **sections: Any) -> Daemon:
            return stack.enter_context(in_process_daemon(root or tmp_path, text, immediate=immediate, edges=edges,
                                                         **sections))

        yield make


@pytest.fixture
def api(make_daemon: Callable[..., Daemon]) -> Iterator[ApiClient]:
    """The API over a real runtime whose worker is not started: builds stay queued (202)."""
    from litestar.testing import TestClient

    d = make_daemon()
    with TestClient(d.app) as client:
        yield ApiClient(client, d)
