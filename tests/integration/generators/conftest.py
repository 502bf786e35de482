"""Fixtures for the generator integration tests: real executable scripts, the fake claude CLI, a log sink."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FAKE_CLAUDE = Path(__file__).resolve().parents[2] / "fakes" / "claude"


@pytest.fixture
def fake_claude() -> str:
    """Path of the executable fake of the Claude CLI."""
    assert os.access(FAKE_CLAUDE, os.X_OK), f"{FAKE_CLAUDE} must be executable"
    return str(FAKE_CLAUDE)


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str], str]:
    """Write a Python program to an executable file (shebang: this interpreter) and return its path."""
    counter = iter(range(1_000_000))

    def make(body: str) -> str:
        path = tmp_path / f"tool{next(counter)}.py"
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    return make


@pytest.fixture
def log() -> list[str]:
    """A list that collects log lines (pass ``log.append`` as the generator's log)."""
    return []
