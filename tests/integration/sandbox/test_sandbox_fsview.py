"""The read-only view (bubblewrap): the host is read-only, only the cwd and the view's writable dirs take writes,
hidden paths are empty, /tmp is private; without bubblewrap the log says so instead of failing silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sandbox
from sandbox import FsView, Limits
from sandbox.fsview import bwrap_availability

LIMITS = Limits(cpu_seconds=10, memory_bytes=256 * 2**20, wall_seconds=30)


def _sh(script: str, cwd: Path, view: FsView, lines: list[str]) -> sandbox.Result:
    return sandbox.run(["sh", "-c", script], cwd=cwd, env=sandbox.safe_env({}, home=cwd), limits=LIMITS,
                       on_line=lines.append, view=view)


def test_bubblewrap_is_there() -> None:
    # make test installs it (scripts/install-system-deps.sh); a missing bwrap must not pass unnoticed here
    assert bwrap_availability().available, bwrap_availability().why


def test_only_the_workspace_and_writable_dirs_take_writes(tmp_path: Path) -> None:
    ws, store, secret_dir = tmp_path / "ws", tmp_path / "store", tmp_path / "daemon"
    for d in (ws, store, secret_dir):
        d.mkdir()
    (secret_dir / "state.db").write_text("rows of every user")
    (secret_dir / "logs").mkdir()
    (secret_dir / "logs" / "other.log").write_text("another build's log")
    lines: list[str] = []
    # outside /tmp (the run's /tmp is its own tmpfs, so a write there never reaches the host anyway)
    escape = Path("/var/tmp") / f"previewd-escape-{os.getpid()}"
    script = (
        f"echo ws > out.txt && echo store > {store}/s.txt && echo tmp > /tmp/t.txt && "
        f"(echo x > {escape} 2>/dev/null && echo ESCAPED || echo up-refused) && "
        "(touch /etc/previewd-x 2>/dev/null && echo ETC || echo etc-refused) && "
        f"(cat {secret_dir}/state.db 2>/dev/null | grep -q rows && echo SECRET || echo secret-hidden) && "
        f"(ls {secret_dir}/logs | grep -q other && echo LOGS || echo logs-hidden)"
    )
    view = FsView(writable=(store,), hidden=(secret_dir / "state.db", secret_dir / "logs"))
    res = _sh(script, ws, view, lines)
    assert res.reason == "ok", (res.detail, lines)
    assert lines[-4:] == ["up-refused", "etc-refused", "secret-hidden", "logs-hidden"], lines
    assert (ws / "out.txt").read_text() == "ws\n" and (store / "s.txt").read_text() == "store\n"
    assert not escape.exists() and not os.path.exists("/etc/previewd-x")
    assert not os.path.exists("/tmp/t.txt")  # the run's /tmp was its own
    assert (secret_dir / "state.db").read_text() == "rows of every user"


def test_the_view_keeps_the_tree_inside_the_limits(tmp_path: Path) -> None:
    lines: list[str] = []
    res = _sh("python3 -c 'a = bytearray(600 * 2**20)'", tmp_path, FsView(), lines)
    assert res.reason == "memory_limit", res.detail


def test_missing_bubblewrap_is_said_in_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import runner
    from sandbox.layers.base import Availability

    monkeypatch.setattr(runner, "bwrap_availability", lambda: Availability(False, "bwrap is not installed"))
    lines: list[str] = []
    res = _sh("echo hi", tmp_path, FsView(), lines)
    assert res.reason == "ok"
    assert any("read-only root unavailable" in line for line in lines)


def test_hard_links_from_a_writable_dir_into_the_cwd_work(tmp_path: Path) -> None:
    # pnpm links packages from its store into node_modules; a second mount for the cwd would break that (EXDEV)
    data = tmp_path / "data"
    (data / "store").mkdir(parents=True)
    (data / "store" / "pkg.js").write_text("module.exports = 1\n")
    ws = data / "projects" / "app"
    ws.mkdir(parents=True)
    lines: list[str] = []
    res = _sh(f"ln {data}/store/pkg.js linked.js && echo linked", ws, FsView(writable=(data,)), lines)
    assert res.reason == "ok" and lines[-1] == "linked", (res.detail, lines)
    assert (ws / "linked.js").stat().st_nlink == 2


def test_the_view_takes_the_network_away_when_asked(tmp_path: Path) -> None:
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    threading.Thread(target=lambda: srv.accept(), daemon=True).start()
    probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2); print(\"connected\")'"
    lines: list[str] = []
    res = sandbox.run(["sh", "-c", probe + " || echo refused"], cwd=tmp_path, env=sandbox.safe_env({}, home=tmp_path),
                      limits=LIMITS, on_line=lines.append, view=FsView(), network=False)
    assert res.reason == "ok" and lines[-1] == "refused", lines
    lines.clear()
    sandbox.run(["sh", "-c", probe], cwd=tmp_path, env=sandbox.safe_env({}, home=tmp_path), limits=LIMITS,
                on_line=lines.append, view=FsView(), network=True)
    assert lines[-1] == "connected", lines
    srv.close()


def test_readonly_paths_under_tmp_stay_visible(tmp_path: Path) -> None:
    # tmp_path lives under /tmp, which the view replaces with a private tmpfs; a toolchain there is bound back
    tool = tmp_path / "tools" / "hello.sh"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho tool-ran\n")
    tool.chmod(0o755)
    ws = Path("/var/tmp") / f"previewd-ws-{os.getpid()}"
    ws.mkdir(exist_ok=True)
    try:
        lines: list[str] = []
        res = _sh(f"{tool} && (echo x > {tool.parent}/w 2>/dev/null && echo WROTE || echo ro)", ws,
                  FsView(readonly=(tool.parent,)), lines)
        assert res.reason == "ok" and lines[0] == "tool-ran" and lines[-1] == "ro", lines
        lines.clear()
        hidden = _sh(f"{tool} || echo missing", ws, FsView(), lines)
        assert hidden.reason == "ok" and lines[-1] == "missing", lines
    finally:
        import shutil

        shutil.rmtree(ws, ignore_errors=True)
