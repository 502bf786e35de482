"""Fixtures for packaging tests: one single-file build per session, run by the system Python in a clean env."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"
# The build uses the interpreter the venv was made from; the file then runs on whatever `python3` a clean PATH
# finds (its shebang is `/usr/bin/env python3`), the distribution's own on a droplet.
BUILD_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")
SYSTEM_PYTHON = shutil.which("python3", path=CLEAN_PATH) or "/usr/bin/python3"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no venv, no PYTHONPATH and no previewd settings: only the system basics."""
    env = {"PATH": CLEAN_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def pkg_dir() -> Iterator[Path]:
    """A world-traversable scratch dir (an unprivileged user runs the daemon from it), removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="previewd-pkg-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pyz(pkg_dir: Path) -> Path:
    """`packaging/build.sh` run once per session for the system Python; the built executable."""
    out = pkg_dir / "dist" / "previewd.pyz"
    proc = subprocess.run([str(REPO / "packaging" / "build.sh"), str(out)], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHON": BUILD_PYTHON}, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.is_file() and os.access(out, os.X_OK)
    return out


@pytest.fixture(scope="session")
def shiv_root(pkg_dir: Path, pyz: Path) -> Path:
    """Where the executable's dependencies are unpacked once, by root, as install.sh does (read-only afterwards)."""
    root = pkg_dir / "lib"
    home = pkg_dir / "home"
    home.mkdir(exist_ok=True)
    proc = subprocess.run([str(pyz), "build-info"], env=clean_env(home, SHIV_ROOT=str(root)), capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    """systemd-analyze, installed from Debian's `systemd` package when missing (idempotent)."""
    found = shutil.which("systemd-analyze")
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "systemd"], env=env, capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "systemd"], env=env, capture_output=True, check=True)
        found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is still missing after apt-get install systemd"
    return found
