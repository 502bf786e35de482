"""Fixtures for the sandbox integration tests: every layer this host offers, a workspace, leak checks."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# sandbox_support sits beside this file; make it importable under both prepend and importlib modes.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from sandbox.layers import cgfs
from tests.integration.sandbox.sandbox_support import HOST_LAYERS


def _our_cgroups() -> list[Path]:
    """Build cgroups named after this test process that still exist."""
    bases = [cgfs.v2_self_dir()] + [cgfs.v1_self_dir(c) for c in ("memory", "pids", "cpuacct", "freezer")]
    found: list[Path] = []
    for base in bases:
        parent = base / cgfs.PARENT_NAME if base else None
        if parent is not None and parent.is_dir():
            found += [p for p in parent.iterdir() if p.is_dir() and p.name.startswith(f"b{os.getpid()}-")]
    return found


@pytest.fixture(params=HOST_LAYERS)
def layer(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each host layer in turn; afterwards no build cgroup of ours may remain."""
    yield request.param
    assert _our_cgroups() == [], "build cgroups left behind"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace directory with a HOME inside it, like the daemon's project dirs."""
    ws = tmp_path / "ws"
    (ws / "home").mkdir(parents=True)
    return ws
