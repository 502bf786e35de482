"""End-to-end fixtures: real `previewd serve` processes (`tests.support.live.LiveDaemon`) with real pnpm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import LiveDaemon


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveDaemon]:
    d = LiveDaemon(tmp_path).start()
    yield d
    d.stop()


@pytest.fixture
def live_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[LiveDaemon] = []

    def make(extra_config: str = "") -> LiveDaemon:
        d = LiveDaemon(tmp_path, extra_config)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
