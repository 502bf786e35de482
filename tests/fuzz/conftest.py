"""Fixtures for the fuzzers: a real daemon (worker not started) with rate caps raised, and its OpenAPI schema."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from daemon.core.config import Config, load
from tests.conftest import SHARED_STORE, TEST_SECRET, free_port

# Caps high enough that the fuzzer reaches the handlers instead of collecting 429s.
FUZZ_CONFIG = """
[server]
port = {port}
wait_timeout_s = 0
[paths]
data_dir = "{data}"
pnpm_store = "{store}"
[rate_limits]
per_ip_per_hour = 1000000
new_projects_per_user_per_hour = 1000000
rebuilds_per_project_per_hour = 1000000
[render]
enabled = false
"""


def fuzz_config(root: Path, **overrides: int) -> Config:
    """The fuzz config on ``root`` (rate caps given as keyword overrides, e.g. ``per_ip_per_hour=2``)."""
    text = FUZZ_CONFIG.format(port=free_port(), data=root / "data", store=SHARED_STORE)
    for key, value in overrides.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    path = root / "previewd.toml"
    path.write_text(text)
    return load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Daemon on a temp data dir whose build worker is never started, so builds stay queued."""
    from daemon.cli.serve import Daemon

    root: Path = tmp_path_factory.mktemp("fuzz-api")
    d = Daemon(fuzz_config(root))
    yield d
    d.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_daemon: Any) -> Any:
    """The daemon's own OpenAPI document, served in-process by the same ASGI stack `previewd serve` runs."""
    return schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_daemon.asgi)
