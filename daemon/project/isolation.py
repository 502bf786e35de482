"""The build-view policy: what each build step may see, write and reach, who it runs as, and when builds are refused."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sandbox
from daemon.core.config import Config
from daemon.project import toolchain
from sandbox import safepath, userns
from sandbox.fsview import INSTALL_HINT, Mount, bwrap_availability
from sandbox.probe import syscall_filter_availability
from sync import names

# Where build tools keep caches and generated code inside node_modules (Vite's .vite and .vite-temp, `tsc -b`'s
# tsBuildInfoFile in the Vite template's .tmp, babel/nuxt/storybook's .cache, Astro, Prisma's generated client,
# Vitest): the only parts of node_modules a step that runs generated code may write; the rest is read-only.
CODE_CACHE_DIRS = (".vite", ".vite-temp", ".tmp", ".cache", ".astro", ".prisma", ".vitest")


class UnsafeLayout(Exception):
    """A project's directories cannot be used safely (a link where a directory must be, or a bad id)."""


@dataclass(frozen=True)
class ProjectDirs:
    """One project's directories. `work` and `cache` are the only places under the data dir that a step running
    its generated code can see; `project` (and `repo.git` in it) stays the daemon's."""

    data_dir: Path
    project: Path
    work: Path
    cache: Path

    @property
    def home(self) -> Path:
        """HOME of the project's build steps (emptied at each build)."""
        return self.cache / "home"

    @property
    def xdg_cache(self) -> Path:
        """XDG_CACHE_HOME of the project's build steps (kept between builds, counted in its disk cap)."""
        return self.cache / "xdg"


def project_dirs(data_dir: Path, user_id: str, project_id: str) -> ProjectDirs:
    """Make (or check) a project's directories without following any link; UnsafeLayout when one is in the way."""
    for value in (user_id, project_id):
        if not names.valid_id(value):
            raise UnsafeLayout(f"invalid id {value!r}: expected {names.ID_RULE}")
    try:
        project = safepath.ensure_dir(data_dir, ["projects", user_id, project_id])
        work = safepath.ensure_dir(data_dir, ["projects", user_id, project_id, "work"])
        cache = safepath.ensure_dir(data_dir, ["projects", user_id, project_id, "cache"])
        for sub in ("home", "xdg"):
            safepath.ensure_dir(data_dir, ["projects", user_id, project_id, "cache", sub])
        repo = project / "repo.git"
        if repo.is_symlink():
            raise safepath.UnsafePath(data_dir, f"projects/{user_id}/{project_id}/repo.git", "it is a link")
    except safepath.UnsafePath as exc:
        raise UnsafeLayout(f"project {user_id}/{project_id}: {exc}; nothing was written through it") from None
    return ProjectDirs(data_dir, project, work, cache)


# -- who runs what -----------------------------------------------------------------------------------------

def code_user(cfg: Config) -> str | None:
    """The user generated code runs as: [sandbox] build_user, else `nobody` when the daemon is root (root in a
    build could read the host's root-only files and copy them into a public preview), else the daemon's own.
    Unconfined (a laptop), the default is the daemon's own user: without a view, `nobody` could not even reach
    the workspace through the 0700 data dir."""
    if cfg.sandbox.build_user:
        return cfg.sandbox.build_user
    if os.geteuid() == 0 and confinement(cfg).confined:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return None
        return "nobody"
    return None


def code_ids(cfg: Config) -> tuple[int, int] | None:
    """(uid, gid) generated code runs as when that differs from the daemon's, else None."""
    user = code_user(cfg)
    if user is None or os.geteuid() != 0:
        return None
    pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    return (pw.pw_uid, pw.pw_gid) if pw.pw_uid != os.geteuid() else None


# -- fail closed -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Confinement:
    """Whether build steps run in their views (`confined`), whether builds may run at all, and what to do."""

    confined: bool
    allowed: bool
    why: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"confined": self.confined, "builds_allowed": self.allowed, "why": self.why}
        if self.fix:
            out["fix"] = self.fix
        # Every step gets it, confined or not (the launcher installs it where bubblewrap does not run).
        sf = syscall_filter_availability()
        out["syscall_filter"] = {"on": sf.available, "why": sf.why}
        if self.allowed and not self.confined:
            out["WARNING"] = UNCONFINED_WARNING
        return out


UNCONFINED_WARNING = ("UNCONFINED BUILDS: [sandbox] allow_unconfined = true and the isolation layer is missing, so "
                      "generated code sees every project, the store and the daemon's files and reaches the network; "
                      "for a developer laptop only")


def confinement(cfg: Config) -> Confinement:
    """Builds run confined when bubblewrap works and [sandbox] readonly_root is on; otherwise they are refused,
    unless [sandbox] allow_unconfined = true (a developer laptop)."""
    av = bwrap_availability()
    if cfg.sandbox.readonly_root and av.available:
        return Confinement(True, True, av.why, "")
    if not cfg.sandbox.readonly_root:
        missing = "[sandbox] readonly_root = false turns the build views off"
        fix = "set [sandbox] readonly_root = true"
    else:
        missing = av.why
        # Installed but refused its namespaces: name the sysctl that refused them (an unprivileged daemon).
        bwrap = shutil.which("bwrap")
        blocked = userns.explain(bwrap=bwrap) if bwrap else None
        fix = blocked[1] if blocked else INSTALL_HINT
        if blocked and blocked[0] not in missing:
            missing = f"{missing} ({blocked[0]})"
    fix += "; or, on a developer laptop only, set [sandbox] allow_unconfined = true"
    if cfg.sandbox.allow_unconfined:
        return Confinement(False, True, f"{missing} (allowed by [sandbox] allow_unconfined = true)", fix)
    return Confinement(False, False, missing, fix)


# -- the views ---------------------------------------------------------------------------------------------

def toolchain_under_tmp(tc: toolchain.Toolchain | None) -> tuple[Path, ...]:
    """Every view gives its step a private /tmp: node or pnpm installed under /tmp (a checkout there) must stay
    visible, so the top directory holding each is bound back read-only."""
    if tc is None:
        return ()
    tops: set[Path] = set()
    for exe in (tc.node, tc.pnpm):
        for p in (Path(exe), Path(exe).resolve()):
            if p.is_relative_to("/tmp") and len(p.parts) > 2:
                tops.add(Path(*p.parts[:3]))
    return tuple(sorted(tops))


def _hide_store(data_dir: Path, store_dir: Path) -> list[Mount]:
    """The store is invisible to generated code: inside the data dir it goes with it, under /tmp with the private
    /tmp, anywhere else it gets its own mask."""
    if store_dir.is_relative_to(data_dir) or store_dir.is_relative_to("/tmp"):
        return []
    return [Mount("hide", store_dir)]


def package_modules(dirs: ProjectDirs, packages: Sequence[str]) -> list[Path]:
    """The node_modules of a workspace's packages (relative dirs below the root) that exist as real directories."""
    out = []
    for rel in packages:
        try:
            out.append(safepath.check_dir(dirs.work, [*rel.split("/"), "node_modules"]))
        except OSError:
            continue
    return out


def code_view(data_dir: Path, store_dir: Path, dirs: ProjectDirs, *, extra_rw: Sequence[Path] = (),
              readonly: Sequence[Path] = (), tmp_bytes: int | None = None,
              packages: Sequence[str] = ()) -> sandbox.FsView:
    """The view of every step that runs generated code (the project's and allow-listed dependencies' scripts,
    `pnpm build`): the host read-only, the data dir and the store hidden, then the project's workspace and cache
    read-write, its node_modules read-only again (its files are hard links to the store's inodes: a read-only
    mount stops a write through them), and only node_modules' cache dirs (and `extra_rw`) writable."""
    nm = dirs.work / "node_modules"
    # /run too: a Unix socket on a read-only mount still accepts connections (D-Bus, a container runtime's
    # socket), and generated code needs nothing there.
    mounts = [Mount("hide", data_dir), *_hide_store(data_dir, store_dir), Mount("hide", Path("/run")),
              Mount("rw", dirs.work), Mount("rw", dirs.cache), Mount("ro", nm)]
    mounts += [Mount("rw", nm / d) for d in CODE_CACHE_DIRS]
    # A workspace package's node_modules (links into the root's) is read-only the same way, its caches writable.
    for pnm in package_modules(dirs, packages):
        mounts += [Mount("ro", pnm), *[Mount("rw", pnm / d) for d in CODE_CACHE_DIRS if (pnm / d).is_dir()]]
    mounts += [Mount("rw", p) for p in extra_rw]
    return sandbox.FsView(readonly=tuple(readonly), mounts=tuple(mounts), tmp_bytes=tmp_bytes)


def checks_view(data_dir: Path, store_dir: Path, dirs: ProjectDirs, state: Path, outputs: Sequence[str], *,
                readonly: Sequence[Path] = (), tmp_bytes: int | None = None,
                packages: Sequence[str] = ()) -> sandbox.FsView:
    """The view of the checks (tsc, eslint: generated code runs in both), beside the bundle and after it, while
    the daemon reads the build's output: the workspace read-only, the build's output dirs absent (a dir made
    after the checks started shows read-only), and writable only their own state dir and each node_modules'
    `.tmp` (where `tsc -b` keeps its build info)."""
    nm = dirs.work / "node_modules"
    mounts = [Mount("hide", data_dir), *_hide_store(data_dir, store_dir), Mount("hide", Path("/run")),
              Mount("ro", dirs.work), Mount("rw", nm / ".tmp")]
    mounts += [Mount("rw", pnm / ".tmp") for pnm in package_modules(dirs, packages)]
    mounts += [Mount("hide", dirs.work / rel) for rel in outputs]
    mounts.append(Mount("rw", state))
    return sandbox.FsView(readonly=tuple(readonly), mounts=tuple(mounts), tmp_bytes=tmp_bytes)


def _hide_all_but(parent: Path, keep: set[str]) -> list[Mount]:
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    return [Mount("hide", parent / n) for n in names if n not in keep]


def install_view(data_dir: Path, store_dir: Path, dirs: ProjectDirs, install_home: Path, *,
                 readonly: Sequence[Path] = (), tmp_bytes: int | None = None) -> sandbox.FsView:
    """The view of `pnpm install` (network on, no generated code: scripts and pnpmfiles off).

    pnpm hard-links packages from the store into node_modules, and a hard link cannot cross mounts: the data dir
    is bound as one mount, and everything in it but this project's workspace, the store, the shared registry
    metadata cache and this install's HOME is masked (other users and projects show as empty directories).
    """
    u, p = dirs.project.parent.name, dirs.project.name
    store_top = store_dir.relative_to(data_dir).parts[0] if store_dir.is_relative_to(data_dir) else None
    writable = [data_dir] + ([] if store_top else [store_dir])
    mounts = _hide_all_but(data_dir, {"projects", "cache", "tmp"} | ({store_top} if store_top else set()))
    mounts += _hide_all_but(data_dir / "tmp", {install_home.name})
    mounts += _hide_all_but(data_dir / "projects", {u})
    mounts += _hide_all_but(data_dir / "projects" / u, {p})
    mounts += _hide_all_but(dirs.project, {"work"})
    return sandbox.FsView(writable=tuple(writable), readonly=tuple(readonly), mounts=tuple(mounts),
                          tmp_bytes=tmp_bytes)


def scratch_view(data_dir: Path, store_dir: Path, scratch: Path, *, readonly: Sequence[Path] = (),
                 tmp_bytes: int | None = None) -> sandbox.FsView:
    """A step that needs only one daemon-made directory (`pnpm audit` on a copy of the lockfile, the render
    check's browser profile): the data dir and the store hidden, `scratch` read-write."""
    mounts = [Mount("hide", data_dir), *_hide_store(data_dir, store_dir), Mount("rw", scratch)]
    return sandbox.FsView(readonly=tuple(readonly), mounts=tuple(mounts), tmp_bytes=tmp_bytes)


# -- ownership ---------------------------------------------------------------------------------------------

def give_to_code(root: Path, ids: tuple[int, int] | None, *, skip: Sequence[str] = ("node_modules",)) -> None:
    """Let the build user write `root` (lchown, links never followed), except the `skip` entries at any depth:
    node_modules (a workspace package's too) stays the daemon's, so generated code can never change what the
    store's inodes hold, nor what the next install writes."""
    if ids is None:
        return
    uid, gid = ids
    st = os.lstat(root)
    if (st.st_uid, st.st_gid) != ids:
        os.lchown(root, uid, gid)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        if skip:
            dirnames[:] = [d for d in dirnames if d not in skip]
            filenames = [f for f in filenames if f not in skip]
        for name in (*dirnames, *filenames):
            s = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if (s.st_uid, s.st_gid) != ids:
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)


def take_back(path: Path) -> None:
    """Give one directory (not its contents) back to the daemon's uid, so a root daemon's install step, which
    runs without capabilities, may write into it."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeLayout(f"{path} is not a directory")
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        os.lchown(path, 0, 0)


def reclaim(root: Path) -> None:
    """Give a tree back to the daemon's uid (lchown, links never followed): before the install writes there."""
    give_to_code(root, (os.geteuid(), os.getegid()), skip=())
