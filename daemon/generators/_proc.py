"""Run a generator tool as a child process: stdin fed, stdout capped, stderr streamed, whole tree killed on timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from daemon.generators.base import GenerationError

STDERR_TAIL_LINES = 20
# What a generator tool gets of the daemon's environment: the basics of a process, proxies and CA bundles, and
# what the Claude CLI reads (its API key or OAuth token, endpoint, model and CLAUDE_* settings). Nothing of
# Cloudflare, S3/AWS, Postgres or the daemon's own PREVIEWD_* settings and secrets.
_PASSED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "NO_COLOR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
})
_PASSED_PREFIXES = ("LC_", "ANTHROPIC_", "CLAUDE_")


@dataclass(frozen=True)
class ToolOutput:
    """What a finished tool left behind."""

    returncode: int
    stdout: bytes
    stderr_tail: str


def default_env() -> dict[str, str]:
    """The allow-listed part of the daemon's environment (see _PASSED): never a daemon secret."""
    return {k: v for k, v in os.environ.items() if k in _PASSED or k.startswith(_PASSED_PREFIXES)}


def run_tool(
    argv: Sequence[str],
    stdin: bytes,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None,
    log: Callable[[str], None],
    stdout_cap: int,
    cwd: str | None = None,
) -> ToolOutput:
    """Run ``argv`` to completion; GenerationError when it cannot start, times out or floods stdout."""
    label = os.path.basename(argv[0]) if argv else "?"
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else default_env(),
            cwd=cwd,
            start_new_session=True,  # its own process group, so a timeout kills grandchildren too
        )
    except OSError as exc:
        raise GenerationError(f"cannot start generator {label!r}: {exc.strerror or exc}") from None
    assert proc.stdin and proc.stdout and proc.stderr
    out = bytearray()
    overflow = threading.Event()
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    threads = [
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True),
        threading.Thread(target=_collect, args=(proc.stdout, out, stdout_cap, overflow, proc), daemon=True),
        threading.Thread(target=_stream, args=(proc.stderr, tail, log, label), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _join(threads)
        raise GenerationError(f"generator {label!r} timed out after {timeout_s:g} s") from None
    _join(threads, timeout_s=2)
    if any(t.is_alive() for t in threads):
        _kill_group(proc)  # a leftover grandchild still holds a pipe open
        _join(threads)
    if overflow.is_set():
        raise GenerationError(f"generator {label!r} printed more than {stdout_cap} bytes; stopped")
    return ToolOutput(rc, bytes(out), "\n".join(tail))


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write the request and close stdin; a tool that exits without reading it is not an error here."""
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


def _collect(
    pipe: IO[bytes], out: bytearray, cap: int, overflow: threading.Event, proc: subprocess.Popen[bytes]
) -> None:
    """Read stdout up to ``cap`` bytes; past it, flag the overflow and kill the tool."""
    while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
        if len(out) + len(chunk) > cap:
            overflow.set()
            _kill_group(proc)
            break
        out += chunk
    pipe.close()


def _stream(pipe: IO[bytes], tail: deque[str], log: Callable[[str], None], label: str) -> None:
    """Forward stderr lines to the build log as they arrive and keep the last few for error messages."""
    for raw in pipe:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")[:2000]
        tail.append(line)
        with contextlib.suppress(Exception):  # a failing log sink must not hang the tool on a full pipe
            log(f"[{label}] {line}")
    pipe.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the tool's whole process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _join(threads: Sequence[threading.Thread], timeout_s: float = 5) -> None:
    """Wait briefly for the pipe threads (a grandchild holding a pipe open must not block us forever)."""
    for t in threads:
        t.join(timeout=timeout_s)


def stream_tool(
    argv: Sequence[str],
    stdin: bytes,
    *,
    timeout_s: float,
    env: Mapping[str, str] | None,
    log: Callable[[str], None],
    stdout_cap: int,
    on_line: Callable[[bytes], None],
    cwd: str | None = None,
) -> ToolOutput:
    """Run ``argv`` like run_tool, but hand each stdout line to ``on_line`` (in the calling thread) as it arrives;
    the returned stdout is empty. An exception from ``on_line`` kills the tool and propagates. GenerationError
    when it cannot start, times out or prints more than ``stdout_cap`` bytes."""
    label = os.path.basename(argv[0]) if argv else "?"
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env) if env is not None else default_env(), cwd=cwd,
                                start_new_session=True)
    except OSError as exc:
        raise GenerationError(f"cannot start generator {label!r}: {exc.strerror or exc}") from None
    assert proc.stdin and proc.stdout and proc.stderr
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    threads = [threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True),
               threading.Thread(target=_stream, args=(proc.stderr, tail, log, label), daemon=True)]
    for t in threads:
        t.start()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    seen = 0
    try:
        while line := proc.stdout.readline(stdout_cap - seen + 1):
            seen += len(line)
            if seen > stdout_cap:
                _kill_group(proc)
                raise GenerationError(f"generator {label!r} printed more than {stdout_cap} bytes; stopped")
            on_line(line)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        timer.cancel()
        proc.stdout.close()
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # stdout closed but the tool lingers
        _kill_group(proc)
        rc = proc.wait()
    _join(threads, timeout_s=2)
    if timed_out.is_set():
        raise GenerationError(f"generator {label!r} timed out after {timeout_s:g} s")
    return ToolOutput(rc, b"", "\n".join(tail))
