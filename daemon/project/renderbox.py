"""Where the render check's browser runs: its own empty network namespace (only its own loopback), a user of its
own (never root, never the build user), the host read-only with the data dir, the store and /run hidden, its
profile in a private /tmp, and Chromium's own sandbox on where the kernel allows it. What it loads comes from
the daemon (daemon/render/origin.py): the deployment's files when the daemon holds them, else its origin.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import sandbox
from daemon.core.config import Config
from daemon.deployers.previewnames import DEPLOYMENT_ID_RE
from daemon.project import isolation
from daemon.render.origin import DirSource, HttpSource, OriginSource
from sandbox import fsview, safepath
from sandbox.fsview import Mount
from sandbox.ownership import user_ids

log = logging.getLogger("previewd.render")

RENDER_USER = "previewd-render"
_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class BrowserBox:
    """How to start the browser: `wrap` its command line (None: unconfined), its env, whether Chromium's own
    sandbox stays on, whether the profile lives in the wrap's private /tmp, and what the log should say."""

    wrap: Callable[[list[str]], list[str]] | None
    env: dict[str, str]
    sandbox: bool
    private_tmp: bool
    note: str


def render_user(cfg: Config) -> str | None:
    """The user Chromium runs as when the daemon is root and the render is confined: [render] user, else
    `previewd-render` (made once as a system user), else `nobody`. None when the daemon is not root (it then
    runs as the daemon's user inside bubblewrap's user namespace) or unconfined."""
    if os.geteuid() != 0 or not isolation.confinement(cfg).confined:
        return None
    if cfg.render.user:
        return cfg.render.user
    return _own_user()


@functools.lru_cache(maxsize=1)
def _own_user() -> str | None:
    """`previewd-render`, created the way install.sh makes `previewd` when it is missing; else `nobody`."""
    try:
        pwd.getpwnam(RENDER_USER)
        return RENDER_USER
    except KeyError:
        pass
    useradd = shutil.which("useradd") or next((p for p in ("/usr/sbin/useradd", "/sbin/useradd")
                                              if os.access(p, os.X_OK)), None)
    if useradd is not None:
        try:
            out = subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir",
                                  "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
                                  "previewd render check (Chromium)", RENDER_USER],
                                 capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
            if out.returncode in (0, 9):  # 9: someone else made it meanwhile
                pwd.getpwnam(RENDER_USER)
                log.info("render check: created system user %s for Chromium", RENDER_USER)
                return RENDER_USER
            log.warning("render check: useradd %s failed (%s); Chromium runs as nobody", RENDER_USER,
                        out.stderr.strip()[:200])
        except (OSError, subprocess.SubprocessError, KeyError) as exc:
            log.warning("render check: cannot create %s (%s); Chromium runs as nobody", RENDER_USER, exc)
    try:
        pwd.getpwnam("nobody")
        return "nobody"
    except KeyError:
        return None


def render_ids(cfg: Config) -> tuple[int, int] | None:
    """(uid, gid) Chromium runs as, when the daemon switches to one."""
    user = render_user(cfg)
    if user is None:
        return None
    ids = user_ids(user)
    return ids if ids[0] != os.geteuid() else None


def browser_box(cfg: Config, data_dir: Path, store_dir: Path, scratch: Path, *, tmp_bytes: int) -> BrowserBox:
    """The confinement of one render check's browser (see the module docstring)."""
    if not isolation.confinement(cfg).confined:
        note = ("render check UNCONFINED (no bubblewrap view): Chromium shares the daemon's network and user; only "
                "the DevTools interception keeps the page to its preview")
        log.warning(note)
        home = safepath.ensure_dir(scratch, ["home"])
        return BrowserBox(None, sandbox.safe_env({"PATH": _PATH}, home=home), False, False, note)
    ids = render_ids(cfg)
    base = isolation.scratch_view(data_dir, store_dir, scratch, tmp_bytes=tmp_bytes)
    # /run holds Unix sockets (D-Bus, databases): a network namespace does not cover those, a mask does.
    view = dataclasses.replace(base, mounts=(*base.mounts, Mount("hide", Path("/run"))))
    wrap = functools.partial(fsview.wrap, cwd=scratch, view=view, network=False, drop_to=ids)
    on, why = chromium_sandbox(wrap)
    who = f"uid {ids[0]}" if ids else f"the daemon's uid {os.geteuid()}"
    note = (f"Chromium as {who}, own network namespace, data dir hidden, "
            f"{'its own sandbox on' if on else 'its own sandbox off: ' + why}")
    return BrowserBox(wrap, sandbox.safe_env({"PATH": _PATH}, home=Path("/tmp")), on, True, note)


def chromium_sandbox(wrap: Callable[[list[str]], list[str]]) -> tuple[bool, str]:
    """Whether Chromium's namespace sandbox can work inside `wrap` (its user may make user, pid and network
    namespaces), and why not. Asked once per command line shape."""
    return _probe(tuple(wrap(["unshare", "--user", "--pid", "--net", "--fork", "true"])))


@functools.lru_cache(maxsize=8)
def _probe(argv: tuple[str, ...]) -> tuple[bool, str]:
    if shutil.which("unshare") is None:
        return False, "util-linux `unshare` is missing, so user namespaces cannot be probed"
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False,
                             stdin=subprocess.DEVNULL, cwd="/")
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"probe failed: {exc}"
    if out.returncode != 0:
        why = ("the kernel refuses user namespaces to the render user here "
               f"({out.stderr.strip()[:160] or out.returncode})")
        # Said once per process (the probe is cached), not at every check.
        log.warning("render check: Chromium's own sandbox is off (--no-sandbox): %s", why)
        return False, why
    return True, ""


def origin_source(preview_url: str, previews_dir: Path, preview_domain: str, timeout_s: float) -> OriginSource:
    """The deployment's files when this droplet holds them (a local deployment: `previews/<label>/`), else
    its origin fetched by the daemon (a remote platform's, or a deployment this droplet does not hold)."""
    host = (urlsplit(preview_url).hostname or "").lower()
    suffix = "." + preview_domain.strip(".").lower()
    label = host[: -len(suffix)] if host.endswith(suffix) else ""
    if label and DEPLOYMENT_ID_RE.match(label):
        root = previews_dir / label
        try:
            if stat.S_ISDIR(os.lstat(root).st_mode):
                return DirSource(root)
        except OSError:
            pass
    return HttpSource(preview_url, timeout_s=timeout_s)
