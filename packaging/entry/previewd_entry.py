"""Entry point of the single-file build: picks `previewd` or `daemonctl` by argv[0] or first argument."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Written next to this module by packaging/build.sh; absent when run from a source tree.
try:
    import previewd_build_info as _info  # type: ignore[import-not-found]

    BUILD: dict[str, str] = dict(_info.BUILD)
except ImportError:
    BUILD = {}

CGROUP_FS = Path("/sys/fs/cgroup")


def _python_matches() -> str | None:
    """An error message when this interpreter is not the one the compiled dependencies were built for."""
    want = BUILD.get("python", "")
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if want and want != have:
        return (f"previewd: this file was built for Python {want} (compiled dependencies such as psycopg-binary "
                f"and msgspec are per-version), but it runs on Python {have}. Try: rebuild it on the target "
                f"with `make package PYTHON=python{have}`, or run it with python{want}.")
    return None


def cap_own_memory(high: str, maximum: str, fs: Path = CGROUP_FS, proc_cgroup: Path = Path("/proc/self/cgroup")
                   ) -> str:
    """Move this process into `<unit>/daemon` of its delegated cgroup2 subtree and cap that leaf only.

    Builds get their own sibling cgroups (`<unit>/previewd/build-*`, made by the sandbox), so a cap here
    never limits a build, while `MemoryMax=` on the unit would (builds are in its subtree). Returns what
    was done, for the log; never raises: without a delegated cgroup2 subtree the daemon runs uncapped.
    """
    try:
        rel = next((line[3:].strip() for line in proc_cgroup.read_text().splitlines() if line.startswith("0::")),
                   None)
        if not rel or not (fs / "cgroup.controllers").exists():
            return "no cgroup2 tree: daemon memory not capped"
        unit = fs / rel.lstrip("/")
        if unit.name == "daemon":
            unit = unit.parent
        if "memory" not in (unit / "cgroup.controllers").read_text().split():
            return f"no memory controller delegated to {unit}: daemon memory not capped"
        leaf = unit / "daemon"
        leaf.mkdir(exist_ok=True)
        # "0" = the writing process; moving first keeps the unit cgroup empty (no-internal-processes rule).
        (leaf / "cgroup.procs").write_text("0")
        (unit / "cgroup.subtree_control").write_text("+memory +pids")
        if high:
            (leaf / "memory.high").write_text(high)
        if maximum:
            (leaf / "memory.max").write_text(maximum)
        return f"daemon process capped in {leaf} (memory.high={high or 'max'}, memory.max={maximum or 'max'})"
    except OSError as exc:
        return f"could not cap daemon memory in its cgroup: {exc}"


def hide_environment() -> bool:
    """Make this process non-dumpable, so processes of the same uid (its builds) cannot read its secrets.

    Builds run as the daemon's uid; without this they could read /proc/<daemon>/environ (which holds the
    secrets systemd passed from /etc/previewd/env) or ptrace it. The flag resets on execve, so children are
    unaffected. Returns whether it took effect.
    """
    import ctypes

    PR_SET_DUMPABLE = 4
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _command(args: list[str]) -> str:
    """The `previewd` subcommand in args (skipping `--config FILE`), or ""."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--config":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return ""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to `daemonctl` (argv[0] or first argument) or `previewd` (default)."""
    argv = list(sys.argv if argv is None else argv)
    problem = _python_matches()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    name = Path(argv[0]).name if argv else "previewd"
    args = argv[1:]
    if name.startswith("daemonctl"):
        tool = "daemonctl"
    elif args and args[0] in ("daemonctl", "previewd"):
        tool, args = args[0], args[1:]
    else:
        tool = "previewd"
    command = _command(args) if tool == "previewd" else ""
    if command == "build-info":
        print(json.dumps(BUILD or {"build": "source tree"}, indent=2))
        return 0
    if tool == "daemonctl":
        from daemon.cli import daemonctl as ctl

        return ctl.main(args)
    high = os.environ.get("PREVIEWD_DAEMON_MEMORY_HIGH", "")
    maximum = os.environ.get("PREVIEWD_DAEMON_MEMORY_MAX", "")
    if command == "serve":
        if not hide_environment():
            print("previewd: could not set PR_SET_DUMPABLE=0; builds of the same uid may read this process",
                  file=sys.stderr)
        if high or maximum:
            print("previewd: " + cap_own_memory(high, maximum), file=sys.stderr)
    from daemon.cli import previewd as cli

    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main())
