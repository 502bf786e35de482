"""Install-time scripts, run after `pnpm install --ignore-scripts` in the no-network view: the allow-listed
dependencies' and the project's own, in npm's order, as one sandboxed step."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import safepath

DEPENDENCY_EVENTS = ("preinstall", "install", "postinstall")
PROJECT_EVENTS = ("preinstall", "install", "postinstall", "preprepare", "prepare", "postprepare")
MAX_PACKAGE_JSON = 1 << 20

# `run DIR EVENT PACKAGE SCRIPT` runs one lifecycle script as pnpm's lifecycle does: in the package's directory,
# with its own and the project's node_modules/.bin on PATH and npm's lifecycle variables.
_RUN = ('run() { echo "> $3 $2: $4"; ( cd "$1" && PATH="$1/node_modules/.bin:$INIT_CWD/node_modules/.bin:$PATH" '
        'npm_lifecycle_event="$2" npm_lifecycle_script="$4" npm_package_name="$3" exec sh -c "$4" ) '
        '|| { rc=$?; echo "> $3 $2 failed (exit $rc)"; return "$rc"; }; }')


@dataclass(frozen=True)
class Script:
    """One lifecycle script to run."""

    directory: Path
    event: str
    package: str
    command: str
    dependency: bool


@dataclass
class ScriptPlan:
    """What the scripts step runs, and the dependency directories it must be able to write."""

    scripts: list[Script] = field(default_factory=list)
    dependency_dirs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _scripts_of(root: Path, rel: list[str]) -> tuple[str, dict[str, str], bool] | None:
    """(name, scripts, has binding.gyp) of the package.json at root/rel, read without following links."""
    try:
        data = json.loads(safepath.read_regular(root, [*rel, "package.json"], MAX_PACKAGE_JSON))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    raw = data.get("scripts")
    scripts = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(raw, dict) else {}
    try:
        gyp = stat.S_ISREG(os.stat(root.joinpath(*rel, "binding.gyp"), follow_symlinks=False).st_mode)
    except OSError:
        gyp = False
    return str(data.get("name") or ""), scripts, gyp


def _dependency_dirs(work: Path, allowed: list[str]) -> list[tuple[str, list[str]]]:
    """(name, path relative to work) of every installed copy of an allow-listed package (pnpm's virtual store:
    node_modules/.pnpm/<name@version>/node_modules/<name>, a real directory; its dependencies are links)."""
    vstore = work / "node_modules" / ".pnpm"
    try:
        entries = sorted(os.listdir(vstore))
    except OSError:
        return []
    found = []
    for entry in entries:
        for name in allowed:
            prefix = name.replace("/", "+") + "@"
            if not entry.startswith(prefix):
                continue
            rel = ["node_modules", ".pnpm", entry, "node_modules", *name.split("/")]
            try:
                safepath.check_dir(work, rel)
            except OSError:
                continue
            found.append((name, rel))
    return found


def plan(work: Path, allowed: list[str], packages: Sequence[str] = (".",)) -> ScriptPlan:
    """The scripts pnpm would have run during the install, minus every dependency not allow-listed. `packages`
    are the project's own (a workspace's, relative to the root, dependencies first): each runs its own install
    scripts in its directory, like the root's."""
    out = ScriptPlan()
    for name, rel in _dependency_dirs(work, allowed):
        info = _scripts_of(work, rel)
        if info is None:
            continue
        _, scripts, gyp = info
        events = [e for e in DEPENDENCY_EVENTS if scripts.get(e)]
        if not events and gyp:
            out.notes.append(f"{name}: has binding.gyp but no install script; node-gyp is not run (it would "
                             "download headers)")
        if events:
            directory = work.joinpath(*rel)
            out.dependency_dirs.append(directory)
            out.scripts += [Script(directory, e, name, scripts[e], True) for e in events]
    for package in packages:
        rel = [p for p in package.split("/") if p not in ("", ".")]
        own = _scripts_of(work, rel)
        if own is None:
            continue
        name, scripts, _ = own
        label = name or (package if rel else "project")
        out.scripts += [Script(work.joinpath(*rel), e, label, scripts[e], False) for e in PROJECT_EVENTS
                        if scripts.get(e)]
    return out


def argv(p: ScriptPlan) -> list[str]:
    """The one command that runs the whole plan: the dependencies' scripts concurrently, as pnpm runs them (each
    package's own events in order, its lines prefixed with its name), then the project's, in order; it stops
    at the first failure."""
    q = shlex.quote
    # Without its record file a failed dependency script would go unnoticed: no file, no step.
    lines = [_RUN, 'failed=$(mktemp) || { echo "cannot create a temporary file for the scripts step"; exit 1; }']
    packages: dict[tuple[Path, str], list[Script]] = {}
    for s in p.scripts:
        if s.dependency:
            packages.setdefault((s.directory, s.package), []).append(s)
    for (directory, name), events in packages.items():
        chain = " && ".join(f"run {q(str(directory))} {q(e.event)} {q(name)} {q(e.command)}" for e in events)
        lines.append(f"{{ {chain} || echo {q(name)} >> \"$failed\"; }} 2>&1 | sed -u {q(f's|^|[{name}] |')} &")
    lines += ["wait", 'if [ -s "$failed" ]; then echo "dependency scripts failed:" $(cat "$failed"); exit 1; fi']
    lines += [f"run {q(str(s.directory))} {q(s.event)} {q(s.package)} {q(s.command)} || exit $?"
              for s in p.scripts if not s.dependency]
    return ["sh", "-c", "\n".join(lines)]


def unlink_shared(directory: Path) -> int:
    """Replace every file under `directory` that has other hard links (a store inode) by a private copy, so the
    scripts step may write the directory without reaching the store. pnpm already copies packages it expects
    to build, so this is normally a no-op; returns how many files it copied."""
    copied = 0
    for dirpath, _dirs, files, dirfd in os.fwalk(directory, follow_symlinks=False):
        for name in files:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink <= 1:
                continue
            tmp = f".{name}.previewd-copy"
            src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
            dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          stat.S_IMODE(st.st_mode), dir_fd=dirfd)
            with os.fdopen(src, "rb") as fsrc, os.fdopen(dst, "wb") as fdst:
                shutil.copyfileobj(fsrc, fdst)
            os.replace(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
            copied += 1
        del dirpath
    return copied
