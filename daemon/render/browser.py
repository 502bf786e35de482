"""Headless Chromium driven over the DevTools protocol on a pipe: launch, call, collect events, kill the tree."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

# The flags this closed network needs: without the background-networking ones Chromium keeps trying to
# reach Google's hosts at start. --no-sandbox is added only when Chromium's own sandbox cannot work (run as root,
# or a kernel without user namespaces): see Browser(sandbox=...).
BASE_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    # Defence in depth behind the interception and the network namespace: no WebRTC route outside a proxy.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)

Event = dict[str, Any]


class BrowserError(Exception):
    """Chromium is missing, crashed, or stopped answering; `reason` is a short stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Browser:
    """One Chromium process tree with a fresh profile; use as a context manager so it always dies."""

    def __init__(self, executable: str = "chromium", extra_flags: tuple[str, ...] = (),
                 workdir: str | os.PathLike[str] | None = None, *, join_cgroups: Sequence[str] = (),
                 env: Mapping[str, str] | None = None,
                 wrap: Callable[[list[str]], list[str]] | None = None, sandbox: bool = False,
                 private_tmp: bool = False) -> None:
        self.join_cgroups = tuple(join_cgroups)
        # Chromium's own sandbox (namespaces + seccomp for renderers); off means --no-sandbox.
        self.sandbox = sandbox
        # The wrap gives the browser a private /tmp: its profile lives there, never on the daemon's disk.
        self.private_tmp = private_tmp
        # Puts the browser's own command line inside a confinement (the daemon's bubblewrap view).
        self.wrap = wrap
        self.env = dict(env) if env is not None else None
        self.executable = executable
        self.extra_flags = extra_flags
        self.workdir = workdir
        self.profile: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._wfd = -1
        self._rfd = -1
        self._buf = b""
        self._inbox: collections.deque[Event] = collections.deque()
        self._next_id = 0
        self._stderr_path: Path | None = None
        # Commands are written by the check's thread and, for paused requests, by the origin's workers.
        self._wlock = threading.Lock()
        self._host_profile = False

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Launch Chromium; raises BrowserError(not_found | launch_failed)."""
        path = shutil.which(self.executable)
        if path is None:
            raise BrowserError("not_found", f"chromium executable not found: {self.executable!r}")
        if self.private_tmp:
            self.profile = Path("/tmp") / f"previewd-chromium-{secrets.token_hex(8)}"
            fd, name = tempfile.mkstemp(prefix="previewd-chromium-", suffix=".stderr", dir=self.workdir)
            os.close(fd)
            self._stderr_path = Path(name)
        else:
            self.profile = Path(tempfile.mkdtemp(prefix="previewd-chromium-", dir=self.workdir))
            self._host_profile = True
            self._stderr_path = self.profile.parent / (self.profile.name + ".stderr")
        to_child_r, self._wfd = os.pipe()
        self._rfd, from_child_w = os.pipe()
        # --remote-debugging-pipe reads commands on fd 3 and writes on fd 4; dash cannot name fds above 9,
        # so the pipes go in as stdin/stdout and a one-line shell moves them (no preexec_fn, thread-safe).
        # Joining the sandbox's cgroups happens in that same shell, before exec, so no browser process is
        # ever outside them.
        join = "".join(f"echo $$ > {shlex.quote(p)} || exit 97; " for p in self.join_cgroups)
        sandbox_flags = () if self.sandbox else ("--no-sandbox",)
        cmd = [path, *BASE_FLAGS, *sandbox_flags, *self.extra_flags, f"--user-data-dir={self.profile}",
               "about:blank"]
        argv = ["/bin/sh", "-c", join + 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh",
                *(self.wrap(cmd) if self.wrap is not None else cmd)]
        try:
            with open(self._stderr_path, "wb") as err:
                self.proc = subprocess.Popen(argv, stdin=to_child_r, stdout=from_child_w, stderr=err,
                                             start_new_session=True, close_fds=True, env=self.env)
        except OSError as exc:
            self.close()
            raise BrowserError("launch_failed", f"cannot start chromium: {exc}") from exc
        finally:
            os.close(to_child_r)
            os.close(from_child_w)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             deadline: float, on_event: Callable[[Event], None] | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer, passing events seen meanwhile to on_event."""
        msg_id = self.send(method, params, session=session)
        while (m := self._next(deadline, method)) is not None:
            if m.get("id") == msg_id:
                if "error" in m:
                    raise BrowserError("protocol_error", f"{method}: {m['error'].get('message', m['error'])}")
                result: dict[str, Any] = m.get("result", {})
                return result
            if on_event is not None and "method" in m:
                on_event(m)
        raise AssertionError("unreachable: _next raises at the deadline while a command waits")

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> int:
        """Send one command without waiting (its answer is dropped unless a `call` waits for it); thread-safe."""
        with self._wlock:
            self._next_id += 1
            msg_id = self._next_id
            msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            self._write(json.dumps(msg).encode() + b"\0", method)
        return msg_id

    def pump(self, until: float, on_event: Callable[[Event], None]) -> None:
        """Deliver events to on_event until the time `until` (no command in flight)."""
        while (m := self._next(until, None)) is not None:
            if "method" in m:
                on_event(m)

    def _write(self, data: bytes, method: str) -> None:
        try:
            if self._wfd < 0:
                raise OSError("closed")
            view = memoryview(data)
            while view:
                n = os.write(self._wfd, view)
                view = view[n:]
        except OSError as exc:
            raise BrowserError("crashed", f"chromium exited before {method}{self._exit_note()}{self._tail()}") from exc

    def _next(self, deadline: float, method: str | None) -> Event | None:
        """The next message before the deadline; None when it passes with no command waiting."""
        while not self._inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                if method is None:
                    return None
                raise BrowserError("timeout", f"chromium did not answer {method} in time")
            ready, _, _ = select.select([self._rfd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._rfd, 1 << 20)
            if not chunk:
                raise BrowserError("crashed", f"chromium exited{self._exit_note()}{self._tail()}")
            self._buf += chunk
            *complete, self._buf = self._buf.split(b"\0")
            self._inbox.extend(json.loads(c) for c in complete if c)
        return self._inbox.popleft()

    def _exit_note(self) -> str:
        code = None
        if self.proc is not None:
            # The pipe closes a moment before the exit status is there; wait briefly to report it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=1)
        return f" with code {code}" if code is not None else ""

    def _tail(self) -> str:
        """The last meaningful stderr line, for the report (D-Bus noise filtered out)."""
        if not self._stderr_path or not self._stderr_path.exists():
            return ""
        lines = [ln for ln in self._stderr_path.read_text(errors="replace").splitlines()
                 if ln.strip() and "dbus" not in ln and "unexpected operator" not in ln]
        return f": {lines[-1][:300]}" if lines else ""

    def close(self) -> None:
        """Kill the whole tree and remove the profile (a graceful Browser.close takes ~2 s and saves nothing)."""
        # The tree dies first: a writer blocked on a browser that stopped reading then gets EPIPE and lets go
        # of the lock. Under the lock no writer can meet the fd number after it is closed (and perhaps reused).
        if self.proc is not None:
            kill_tree(self.proc, self.profile)
            self.proc = None
        locked = self._wlock.acquire(timeout=10)
        try:
            fds, self._wfd, self._rfd = (self._wfd, self._rfd), -1, -1
        finally:
            if locked:
                self._wlock.release()
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self.profile is not None:
            if self._host_profile:  # a private /tmp went with the sandbox
                shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None
        if self._stderr_path is not None:
            with contextlib.suppress(OSError):
                self._stderr_path.unlink()
            self._stderr_path = None


def kill_tree(proc: subprocess.Popen[bytes], profile: Path | None) -> None:
    """SIGKILL the launcher, its descendants, its process group and any process using this profile."""
    victims: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(proc.pid)
        victims[root.pid] = root
        for child in root.children(recursive=True):
            victims[child.pid] = child
    # Orphans re-parented away from the tree still carry the unique profile path on their command line.
    if profile is not None:
        marker = f"--user-data-dir={profile}"
        for p in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error, TypeError):
                if marker in (p.info["cmdline"] or []):
                    victims[p.pid] = p
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    for p in victims.values():
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    # Orphans are reaped by PID 1, which may take a while; a zombie holds nothing, so dead enough.
    until = time.monotonic() + 5
    while time.monotonic() < until and any(_alive(p) for p in victims.values()):
        time.sleep(0.01)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
