"""Shared helpers for the Cloudflare tests: the fake Pages API class and the wrangler commands to run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.fakes.cf_pages_api import FakePagesApi

REPO = Path(__file__).resolve().parents[3]
FAKE_WRANGLER = REPO / "tests" / "fakes" / "wrangler"
VERSION_ID = "01JB8ZK3XW5Q7M2N4P6R8T0V1Y"
PROJECT_ID = "01JB8ZJ0AB1CD2EF3GH4JK5MN6"

__all__ = [
    "FAKE_WRANGLER",
    "PROJECT_ID",
    "VERSION_ID",
    "FakePagesApi",
    "LogLines",
    "fake_mode",
    "real_or_fake_wrangler",
]


class LogLines(list[str]):
    """Collects log lines; passed as the deployer's ``log`` callable."""

    def __call__(self, line: str) -> None:
        self.append(line)


def fake_mode(mode: str, *extra_env: str) -> tuple[str, ...]:
    """The fake wrangler run in ``mode``; ``env`` carries the switch through the deployer's scrubbed env.

    Runs it with this interpreter, not the shebang: a pyenv shim on PATH would add variables of its own.
    """
    return ("env", f"FAKE_WRANGLER_MODE={mode}", *extra_env, sys.executable, str(FAKE_WRANGLER))


def real_or_fake_wrangler() -> tuple[str, ...]:
    """The real wrangler when PREVIEWD_REAL_WRANGLER names an executable, else the fake one."""
    real = os.environ.get("PREVIEWD_REAL_WRANGLER", "")
    if real and os.path.isfile(real) and os.access(real, os.X_OK):
        return (real,)
    return (str(FAKE_WRANGLER),)
