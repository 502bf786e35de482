"""What this host offers: which layer runs and why, and each isolation feature on or off and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sandbox.layers import LAYER_NAMES, Availability, check_layer

LAUNCHER = Path(__file__).with_name("launcher.py")
_lock = threading.Lock()
_cache: dict[str, Availability] = {}


def launcher_argv(spec: dict[str, Any], argv: list[str]) -> list[str]:
    """The command line that runs `argv` through the trusted launcher with `spec`."""
    return [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), *argv]


def _cached(key: str, check: Any) -> Availability:
    with _lock:
        if key not in _cache:
            _cache[key] = check()
        return _cache[key]


def layer_availability(name: str) -> Availability:
    """Availability of one layer on this host (probed once per process)."""
    if name not in LAYER_NAMES:
        raise ValueError(f"unknown sandbox layer {name!r}; expected auto or one of {', '.join(LAYER_NAMES)}")
    return _cached(f"layer:{name}", lambda: check_layer(name))


def select_layer(preferred: str | None = None) -> str:
    """Resolve "auto"/None to the best available layer; raise ValueError if a forced one is unavailable."""
    if preferred is None or preferred == "auto":
        for name in LAYER_NAMES:
            if layer_availability(name).available:
                return name
        raise ValueError("no sandbox layer is available on this host")  # watchdog needs only /proc
    av = layer_availability(preferred)
    if not av.available:
        raise ValueError(f"sandbox layer {preferred!r} is not available here: {av.why}")
    return preferred


def _launch_true(extra: dict[str, object]) -> tuple[int, str] | str:
    """Run /bin/true through the launcher with `extra` in its spec: (exit code, what it reported), or why not."""
    r, w = os.pipe()
    spec = {"status_fd": w, "supervisor_pid": os.getpid(), **extra}
    try:
        proc = subprocess.run(launcher_argv(spec, ["/bin/true"]), pass_fds=(w,), env={}, capture_output=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError) as err:
        os.close(r)
        os.close(w)
        return f"probe failed: {err}"
    os.close(w)
    with os.fdopen(r, "rb") as f:
        return proc.returncode, f.read().decode(errors="replace")


def _check_netns() -> Availability:
    got = _launch_true({"netns": True})
    if isinstance(got, str):
        return Availability(False, got)
    code, msg = got
    if code == 0 and not msg:
        return Availability(True, "unshare(CLONE_NEWNET) works: network=False steps get only a down loopback")
    return Availability(False, f"cannot create a network namespace: {msg or code}")


def _check_syscall_filter() -> Availability:
    from sandbox import seccomp

    try:
        prog = seccomp.program()
    except ValueError as err:
        return Availability(False, str(err))
    got = _launch_true({"seccomp": prog.hex()})
    if isinstance(got, str):
        return Availability(False, got)
    code, msg = got
    if code == 0 and not msg:
        return Availability(True, seccomp.summary())
    return Availability(False, f"the kernel refused the filter: {msg or code}")


def syscall_filter_availability() -> Availability:
    """Whether the syscall filter (sandbox.seccomp) knows this architecture and the kernel takes it."""
    return _cached("seccomp", _check_syscall_filter)


def netns_availability() -> Availability:
    """Whether network=False can be honoured (a new, empty network namespace)."""
    return _cached("netns", _check_netns)


def user_switch_availability() -> Availability:
    """Whether `run(user=...)` can switch to an unprivileged user."""
    if os.geteuid() == 0:
        return Availability(True, "running as root: run(user=...) drops to that uid/gid with no groups")
    return Availability(False, f"running as uid {os.geteuid()}, not root: builds run as the daemon's user")


def _network_isolation() -> Availability:
    own = netns_availability()
    if own.available:
        return own
    ro = _readonly_root()
    if ro.available:
        return Availability(True, "through bubblewrap's user namespace (steps run in the read-only view); "
                                  f"unshare alone is not possible: {own.why}")
    return own


def _readonly_root() -> Availability:
    from sandbox.fsview import bwrap_availability

    return bwrap_availability()


def probe() -> dict[str, Any]:
    """The report `previewd doctor` prints: chosen layer and why, every layer, every isolation feature."""
    layers = {name: layer_availability(name) for name in LAYER_NAMES}
    chosen = next((n for n in LAYER_NAMES if layers[n].available), None)
    skipped = [f"{n}: {layers[n].why}" for n in LAYER_NAMES if n != chosen and LAYER_NAMES.index(n) <
               (LAYER_NAMES.index(chosen) if chosen else len(LAYER_NAMES))]
    why = layers[chosen].why if chosen else "no layer available"
    if skipped:
        why += " (better layers unavailable: " + "; ".join(skipped) + ")"

    def feat(av: Availability) -> dict[str, Any]:
        return {"on": av.available, "why": av.why}

    return {
        "layer": chosen,
        "why": why,
        "layers": {n: {"available": a.available, "why": a.why} for n, a in layers.items()},
        "features": {
            "env_allowlist": {"on": True, "why": "child env is exactly what the caller passes (see safe_env)"},
            "network_isolation": feat(_network_isolation()),
            "user_switch": feat(user_switch_availability()),
            "readonly_root": feat(_readonly_root()),
            "new_session": {"on": True, "why": "setsid before exec; no controlling terminal"},
            "syscall_filter": feat(syscall_filter_availability()),
            "no_new_privs": {"on": True, "why": "PR_SET_NO_NEW_PRIVS set before exec"},
            "rlimit_backstops": {"on": True, "why": "RLIMIT_FSIZE (output), RLIMIT_CPU, RLIMIT_CORE=0"},
        },
    }
