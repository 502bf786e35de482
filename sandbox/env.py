"""The allow-listed environment a sandboxed command gets: nothing leaks from the daemon's own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def safe_env(extra: Mapping[str, str], *, home: Path) -> dict[str, str]:
    """Return PATH, HOME, LANG/LC_ALL, TZ, CI=true plus `extra`; nothing is read from os.environ."""
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "CI": "true",
    }
    for key, value in extra.items():
        check_env_item(key, value)
        env[key] = value
    return env


def check_env_item(key: object, value: object) -> None:
    """Raise ValueError unless key/value can be passed to execve."""
    if not isinstance(key, str) or not isinstance(value, str):
        raise ValueError(f"environment entries must be str -> str, got {key!r}")
    if not key or "=" in key or "\0" in key:
        raise ValueError(f"invalid environment variable name {key!r}")
    if "\0" in value:
        raise ValueError(f"environment variable {key!r} contains a NUL byte")
