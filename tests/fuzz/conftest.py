"""Fixtures for the fuzzers: a real daemon (worker not started) with rate caps raised, and its OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis

from tests.support import in_process_daemon

if TYPE_CHECKING:
    from daemon.cli.serve import Daemon

# Caps high enough that the fuzzer reaches the handlers instead of collecting 429s.
FUZZ_CONFIG: dict[str, dict[str, Any]] = {
    "server": {"wait_timeout_s": 0},
    "rate_limits": {"per_ip_per_hour": 1_000_000, "new_projects_per_user_per_hour": 1_000_000,
                    "rebuilds_per_project_per_hour": 1_000_000},
    "render": {"enabled": False},
}


def fuzz_daemon_at(root: Path, **caps: int) -> AbstractContextManager[Daemon]:
    """An in-process daemon (worker not started: builds stay queued) with the fuzz config on ``root``.

    Rate caps come as keyword overrides, e.g. ``per_ip_per_hour=2``.
    """
    return in_process_daemon(root, **{**FUZZ_CONFIG, "rate_limits": {**FUZZ_CONFIG["rate_limits"], **caps}})


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One fuzz daemon for the module: builds stay queued."""
    with fuzz_daemon_at(tmp_path_factory.mktemp("fuzz-api")) as d:
        yield d


@pytest.fixture(scope="module")
def api_schema(fuzz_daemon: Any) -> Any:
    """The daemon's own OpenAPI document, served in-process by the same ASGI stack `previewd serve` runs."""
    return schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_daemon.asgi)
