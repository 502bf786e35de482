"""Fixtures for history integration tests: repos that are fsck-checked by the real git CLI at teardown."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.history.history_support import SMALL_PROJECT, Repos, write_files


@pytest.fixture
def repos(tmp_path: Path) -> Iterator[Repos]:
    made = Repos(tmp_path)
    yield made
    for path in made.paths:
        if not (path / "HEAD").exists():
            continue
        proc = subprocess.run(
            ["git", "--git-dir", str(path), "fsck", "--full", "--strict", "--no-progress"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"git fsck failed on {path}:\n{proc.stdout}\n{proc.stderr}"
        assert "error" not in proc.stderr.lower() and "warning" not in proc.stderr.lower(), proc.stderr


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    write_files(ws, dict(SMALL_PROJECT))
    return ws
