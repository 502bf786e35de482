"""Only the daemon configures a networked step: what `pnpm install` and `pnpm audit` may read as configuration.

pnpm takes settings from its command line, then `npm_config_*` / `pnpm_config_*` variables, then the root
pnpm-workspace.yaml (pnpm 10 reads every setting there: registry, proxy, storeDir...), then `.npmrc` files
(the workspace's, HOME's, XDG_CONFIG_HOME/pnpm/rc) and the root package.json's `pnpm` field. A file generated
code wrote (a postinstall, a build, a check) and one of those steps later obeyed would let a project point the
next networked install, which writes the shared store and metadata cache, at a server of its choosing.

So before every networked step: every config file of a package manager not written by the daemon is removed at
any depth of the workspace (node_modules' internals are pnpm's own and read-only to generated code; its cache
dirs, which generated code writes, are purged too), the daemon's own files are checked against what it wrote,
and the network settings are pinned on the command line (toolchain.network_pins), which outranks every file.
The step's environment holds no config variable but the daemon's (sandbox.safe_env reads nothing inherited).
Two inputs steer the install besides config: the lockfile (an entry resolving outside the registry drops it) and
the workspace's projects (pinned to the packages found in the file set: toolchain.install_argv).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.project.buildlog import BuildLog
from daemon.project.isolation import CODE_CACHE_DIRS
from daemon.project.toolchain import DEFAULT_REGISTRY
from sandbox import safepath

# Read by pnpm (or by another package manager a script could start) as configuration. Compared without case.
_FOREIGN_NAMES = frozenset({
    ".npmrc", "bunfig.toml", ".bunfig.toml",
    # pnpm looks for these beside pnpm-workspace.yaml (and fails on them, or reads them in other versions)
    "pnpm-workspace.yml", ".pnpm-workspace.yaml", ".pnpm-workspace.yml", ".pnpm-workspaces.yaml",
    ".pnpm-workspaces.yml",
})
_FOREIGN_PREFIXES = (".pnpmfile.", ".yarnrc")
WORKSPACE_FILE = "pnpm-workspace.yaml"  # the daemon's at the root; anywhere else it is foreign
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_foreign(name: str, *, at_root: bool) -> bool:
    """True for a package manager's config file name (pnpm-workspace.yaml only below the root)."""
    low = name.casefold()
    if low == WORKSPACE_FILE:
        return not at_root
    return low in _FOREIGN_NAMES or low.startswith(_FOREIGN_PREFIXES)


def drop_foreign(files: dict[str, str], blog: BuildLog) -> dict[str, str]:
    """The file set without package-manager config files (a base version recorded before this policy may hold
    them): they never reach the workspace, whatever history says."""
    gone = [p for p in files if is_foreign(p.rsplit("/", 1)[-1], at_root="/" not in p)]
    if not gone:
        return files
    blog.step(f"removed {', '.join(sorted(gone)[:10])}{' ...' if len(gone) > 10 else ''}: package-manager "
              "configuration is the daemon's")
    return {k: v for k, v in files.items() if k not in gone}


# Lockfile resolutions that send pnpm somewhere other than the registry's own packages (a tarball URL, a git repo,
# a local directory). pnpm trusts a lockfile entry whose specifier still matches package.json, so one of these
# would make the networked install fetch from a host the lockfile names.
# pnpm's own lockfile for registry packages holds no URL at all: any URL elsewhere than under the registry counts.
_LOCK_REACH = re.compile(r"""\b(tarball|repo|directory)\s*:\s*['"]?([^\s,}'"]+)""")
_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s,}'"]+""", re.IGNORECASE)


def lockfile_reaches(text: str, registry: str) -> list[str]:
    """The places a lockfile would send the install that are not packages of `registry` (empty: none)."""
    found = [m.group(2) for m in _LOCK_REACH.finditer(text)
             if not (m.group(1) == "tarball" and m.group(2).startswith(registry))]
    found += [u for u in _URL.findall(text) if not u.startswith(registry) and u not in found]
    return found


@dataclass
class Purged:
    """What `purge` did: the config files it removed (workspace-relative), the daemon files it rewrote, and how
    many entries it gave back to the daemon's uid."""

    removed: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    reclaimed: int = 0


def purge(work: Path, daemon_files: Mapping[str, str], *, cache_dirs: tuple[str, ...], reclaim: bool) -> Purged:
    """Make the workspace hold no configuration but the daemon's before a networked step (nothing generated runs
    then). Walks every directory through O_NOFOLLOW descriptors, links never followed: removes each foreign config
    file (file, link or directory); inside a node_modules enters only its `cache_dirs` (generated code's). The
    `daemon_files` (relative path -> content: pnpm-workspace.yaml, the manifests) are written back when they differ
    from what the daemon wrote. With `reclaim`, every entry outside node_modules becomes the daemon's uid again,
    so pnpm (root without CAP_CHOWN in its view) can replace pnpm-lock.yaml, whose owner it keeps."""
    out = Purged()
    ids = (os.geteuid(), os.getegid())
    root = os.open(work, _DIR_FLAGS)
    try:
        _walk(root, "", out, cache_dirs, ids if reclaim else None, in_modules=False)
    finally:
        os.close(root)
    for rel, text in daemon_files.items():
        parts = rel.split("/")
        want = text.encode("utf-8")
        try:
            same = safepath.read_regular(work, parts, len(want) + 1) == want
        except (OSError, ValueError):
            same = False
        if not same:
            safepath.write_atomic(work, parts, want)
            out.rewritten.append(rel)
    return out


def _remove(dir_fd: int, name: str) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _walk(dir_fd: int, prefix: str, out: Purged, cache_dirs: tuple[str, ...], ids: tuple[int, int] | None, *,
          in_modules: bool) -> None:
    with os.scandir(dir_fd) as it:
        entries = list(it)
    for entry in entries:
        rel = prefix + entry.name
        if is_foreign(entry.name, at_root=not prefix):
            _remove(dir_fd, entry.name)
            out.removed.append(rel)
            continue
        st = entry.stat(follow_symlinks=False)
        if ids is not None and not in_modules and entry.name != "node_modules" and (st.st_uid, st.st_gid) != ids:
            os.chown(entry.name, *ids, dir_fd=dir_fd, follow_symlinks=False)
            out.reclaimed += 1
        if not stat.S_ISDIR(st.st_mode):
            continue
        if entry.name == "node_modules" and not in_modules:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                nm = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    for d in cache_dirs:
                        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                            sub = os.open(d, _DIR_FLAGS, dir_fd=nm)
                            try:
                                _walk(sub, f"{rel}/{d}/", out, cache_dirs, None, in_modules=True)
                            finally:
                                os.close(sub)
                finally:
                    os.close(nm)
            continue
        sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            _walk(sub, rel + "/", out, cache_dirs, ids, in_modules=in_modules)
        finally:
            os.close(sub)


def before_install(work: Path, files: Mapping[str, str], manifests: Sequence[str], registry: str, *, reclaim: bool,
                   say: Callable[[str], None]) -> Purged:
    """Right before the networked `pnpm install` (nothing generated runs then): a lockfile that resolves outside
    the registry is dropped (pnpm resolves afresh), then `purge` with the daemon's own files (the manifests, the
    workspace file, the lockfile, as written from `files`) and node_modules' code cache dirs. Logs what it did."""
    own = {rel: files[rel] for rel in (*manifests, WORKSPACE_FILE, "pnpm-lock.yaml") if rel in files}
    reach = lockfile_reaches(own.get("pnpm-lock.yaml", ""), registry or DEFAULT_REGISTRY)
    if reach:
        own.pop("pnpm-lock.yaml")
        safepath.remove_tree(work, ["pnpm-lock.yaml"])
        say(f"before the install: pnpm-lock.yaml dropped: it resolves packages outside the registry "
            f"({', '.join(reach[:3])[:300]})")
    out = purge(work, own, cache_dirs=CODE_CACHE_DIRS, reclaim=reclaim)
    if out.removed:
        shown = ", ".join(out.removed[:10]) + (" ..." if len(out.removed) > 10 else "")
        say(f"before the install: removed package-manager config not written by the daemon: {shown}")
    if out.rewritten:
        say(f"before the install: restored the daemon's {', '.join(out.rewritten)} (changed since written)")
    return out
