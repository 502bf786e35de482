"""The one set of test helpers: ports, polling, config files, request signing, an API client, in-process daemons.

A daemon in a test is either in-process (`in_process_daemon`, or the `make_daemon` / `api` fixtures built on it:
wired, never started; builds stay queued, or run inline with ``immediate=True``) or a real `previewd serve`
process (`tests.support.live.LiveDaemon`). Both take their config from `write_config`.
"""

from __future__ import annotations

import json
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.cli.client import SheenAuth
from daemon.core.config import Config, load
from daemon.core.signing import sign, sign_v2

if TYPE_CHECKING:
    from daemon.cli.serve import Daemon

TEST_SECRET = "test-secret-0123456789abcdef"
SHARED_STORE = Path("/tmp/previewd-test-pnpm-store")

Sections = dict[str, dict[str, Any]]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll fn until it returns something truthy and return that; fail the test at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


# -- config -----------------------------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def toml_text(sections: Sections) -> str:
    """The config's TOML (one table per section, scalar or list values)."""
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{key} = {_toml_value(value)}" for key, value in keys.items() if not isinstance(value, dict)]
        for sub, table in keys.items():  # nested tables, e.g. [plans.<name>]
            if isinstance(table, dict):
                out.append(f"[{name}.{sub}]")
                out += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(out) + "\n"


def write_config(tmp: Path, text: str = "", *, port: int | None = None, **sections: dict[str, Any]) -> Path:
    """``tmp/previewd.toml``: a free port, data in ``tmp/data``, the shared test pnpm store (installs stay warm), no
    warm bundlers.

    ``text`` (TOML) and then ``sections`` (e.g. ``render={"enabled": False}``) are merged over that key by key,
    so either may set keys of [server] or [paths] too.
    """
    # No warm bundlers unless a test asks (tests/e2e/test_warm_bundler.py): each would fill its cache with a
    # second bundle in the background of every test that builds, and hold ~350 MiB until its daemon stops.
    merged: Sections = {"server": {"port": port or free_port()},
                        "paths": {"data_dir": str(tmp / "data"), "pnpm_store": str(SHARED_STORE)},
                        "build": {"warm_projects": 0}}
    for layer in (tomllib.loads(text), sections):
        for name, keys in layer.items():
            merged.setdefault(name, {}).update(keys)
    path = tmp / "previewd.toml"
    path.write_text(toml_text(merged))
    return path


def add_config(path: Path, text: str) -> None:
    """Merge ``text`` (TOML) over the config file at ``path`` key by key (appending would declare a table twice)."""
    merged: Sections = tomllib.loads(path.read_text())
    for name, keys in tomllib.loads(text).items():
        merged.setdefault(name, {}).update(keys)
    path.write_text(toml_text(merged))


def make_config(tmp: Path, text: str = "", *, env: dict[str, str] | None = None,
                **sections: dict[str, Any]) -> Config:
    """Load `write_config`'s file the way the daemon does, with the test HMAC secret in the environment."""
    return load(write_config(tmp, text, **sections), env={"PREVIEWD_HMAC_SECRET": TEST_SECRET, **(env or {})})


# -- requests ---------------------------------------------------------------------------------------------------

def signed_headers(method: str, target: str, body: bytes = b"", *, secret: str = TEST_SECRET,
                   ts: str | None = None) -> dict[str, str]:
    """Headers of a v2-signed request: the MAC covers method, target (path?query as sent), timestamp and body.
    With `auth` (an httpx Auth) a client signs every request itself; this is for hand-made requests."""
    stamp = ts if ts is not None else f"{time.time():.6f}"
    return {"content-type": "application/json", "x-sheen-timestamp": stamp,
            "x-sheen-signature": sign_v2(secret, method, target, stamp, body)}


def body_only_headers(body: bytes, *, secret: str = TEST_SECRET) -> dict[str, str]:
    """Headers of the seed's body-only signature (no timestamp): only its three POST routes accept it."""
    return {"content-type": "application/json", "x-sheen-signature": sign(secret, body)}


def auth(secret: str = TEST_SECRET) -> SheenAuth:
    """An httpx auth that v2-signs every request a client sends (the one daemonctl uses)."""
    return SheenAuth(secret)


class ApiClient:
    """Wraps Litestar's TestClient: requests are v2-signed unless sign_it=False; ``daemon`` is the in-process
    daemon behind it, if any."""

    def __init__(self, client: Any, daemon: Daemon | None = None) -> None:
        self.client = client
        self._daemon = daemon

    @property
    def daemon(self) -> Daemon:
        assert self._daemon is not None, "this client has no daemon behind it"
        return self._daemon

    def post(self, path: str, payload: Any, *, sign_it: bool = True, params: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h = {"content-type": "application/json", **(headers or {})}
        return self.client.post(path, content=body, headers=h, params=params, auth=auth() if sign_it else None)

    def get(self, path: str, *, sign_it: bool = True, **kw: Any) -> Any:
        return self.client.get(path, auth=auth() if sign_it else None, **kw)

    def put(self, path: str, payload: Any, *, sign_it: bool = True) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.put(path, content=body, headers={"content-type": "application/json"},
                               auth=auth() if sign_it else None)


# -- in-process daemons -----------------------------------------------------------------------------------------

@contextmanager
def in_process_daemon(tmp: Path, text: str = "", *, immediate: bool = False, env: dict[str, str] | None = None,
                      edges: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Iterator[Daemon]:
    """A `Daemon` wired on ``tmp`` (config from `make_config`) and never started: no worker, sync loop or scheduler.

    ``edges`` replace configured edges (`Runtime`'s keywords). Builds stay queued, unless ``immediate``: then
    Huey runs each one inline when it is queued, so the request that queued it returns after the pipeline has
    run. Closed (data-dir lock released) on exit.
    """
    from daemon.cli.serve import Daemon

    d = Daemon(make_config(tmp, text, env=env, **sections), immediate=immediate, **(edges or {}))
    try:
        yield d
    finally:
        d.close()
