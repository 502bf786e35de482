"""Isolation: allow-listed env, no daemon secrets, user switching, no network for network=False steps."""

from __future__ import annotations

import os
import pwd
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox
from sandbox import Limits
from tests.integration.sandbox.sandbox_support import assert_normal_run, my_pid, run_py

SECRET_VAR = "PREVIEWD_TEST_DAEMON_SECRET"
SECRET = "hunter2-do-not-leak"


def test_parent_env_secret_is_not_visible(workspace: Path, layer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_VAR, SECRET)
    code = "import os; [print(f'{k}={v}') for k, v in sorted(os.environ.items())]"
    env = sandbox.safe_env({"PNPM_STORE_DIR": "/tmp/store"}, home=workspace / "home")
    res, lines = run_py(code, workspace, Limits(wall_seconds=20), layer, env=env)
    assert res.reason == "ok", res
    seen = dict(line.split("=", 1) for line in lines)
    assert SECRET_VAR not in seen
    assert all(SECRET not in line for line in lines)
    assert seen["HOME"] == str(workspace / "home")
    assert seen["CI"] == "true"
    assert seen["PNPM_STORE_DIR"] == "/tmp/store"
    assert_normal_run(workspace, layer)


@pytest.fixture
def build_user(workspace: Path) -> Iterator[str]:
    """An unprivileged user that owns the workspace (nobody exists on Debian)."""
    pw = pwd.getpwnam("nobody")
    for path in (workspace, workspace / "home"):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    yield "nobody"


def test_runs_as_the_configured_user(workspace: Path, layer: str, build_user: str) -> None:
    code = "import os; print(os.getuid(), os.getgid(), os.getgroups()); open('made-by-build', 'w').close()"
    res, lines = run_py(code, workspace, Limits(wall_seconds=20), layer, user=build_user)
    pw = pwd.getpwnam(build_user)
    assert (res.reason, lines) == ("ok", [f"{pw.pw_uid} {pw.pw_gid} []"]), res
    assert (workspace / "made-by-build").stat().st_uid == pw.pw_uid
    # A bare command name: the PATH lookup happens after the uid switch.
    lines.clear()
    res = sandbox.run(["id", "-u"], workspace, sandbox.safe_env({}, home=workspace / "home"), Limits(),
                      on_line=lines.append, layer=layer, user=build_user)
    assert (res.reason, lines) == ("ok", [str(pw.pw_uid)]), res
    assert_normal_run(workspace, layer)


def test_daemon_proc_environ_is_unreadable_as_build_user(
    workspace: Path, layer: str, build_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_VAR, SECRET)
    code = f"""
import os, signal
for path in ("/proc/{my_pid()}/environ", "/proc/{my_pid()}/mem"):
    try:
        data = open(path, "rb").read()
        print("READ", path, b"{SECRET}" in data)
    except OSError as err:
        print("DENIED", path, type(err).__name__)
try:
    os.kill({my_pid()}, 0)
    print("CAN SIGNAL")
except PermissionError:
    print("CANNOT SIGNAL")
"""
    res, lines = run_py(code, workspace, Limits(wall_seconds=20), layer, user=build_user)
    assert res.reason == "ok", res
    assert lines == [
        f"DENIED /proc/{my_pid()}/environ PermissionError",
        f"DENIED /proc/{my_pid()}/mem PermissionError",
        "CANNOT SIGNAL",
    ]
    assert_normal_run(workspace, layer)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on loopback that accepts and closes; yields its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


CONNECT = """
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    print("connected")
except OSError as err:
    print("refused", type(err).__name__)
"""


def test_network_refused_when_network_false(workspace: Path, layer: str, listener: int) -> None:
    assert sandbox.probe()["features"]["network_isolation"]["on"] is True  # root here: unshare works
    res, lines = run_py(CONNECT.format(port=listener), workspace, Limits(wall_seconds=20), layer, network=False)
    assert res.reason == "ok", res
    assert len(lines) == 1 and lines[0].startswith("refused"), lines
    # The same call with network allowed reaches the listener: the refusal above is the namespace.
    res, lines = run_py(CONNECT.format(port=listener), workspace, Limits(wall_seconds=20), layer, network=True)
    assert (res.reason, lines) == ("ok", ["connected"]), res
    assert_normal_run(workspace, layer)
