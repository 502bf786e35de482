"""How a step runs a command in the sandbox: the build's limits, an environment with nothing of the daemon's, the
disk cap's roots, and the run itself (the lease checked around it, its usage metered, a breach ends the build)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sandbox
from daemon.core import quotas
from daemon.core.config import Config
from daemon.project import isolation, toolchain
from daemon.project.failures import BuildFailed
from daemon.steps.context import BuildContext

SANDBOX_REASONS = {"cpu_limit", "memory_limit", "output_limit", "timeout", "pids_limit", "disk_limit"}


def limits(cfg: Config) -> sandbox.Limits:
    """The sandbox limits of every step from `[limits]`."""
    lim = cfg.limits
    return sandbox.Limits(cpu_seconds=lim.cpu_seconds, memory_bytes=lim.memory_mb * 2**20,
                          output_bytes=lim.output_mb * 2**20, wall_seconds=lim.wall_seconds, pids=lim.pids,
                          log_bytes=lim.log_mb * 2**20, disk_bytes=lim.disk_mb * 2**20)


def env(cfg: Config, tc: toolchain.Toolchain, home: Path, xdg_cache: Path, store: Path | None = None) -> dict[str, str]:
    """The whole environment of a build step: nothing of the daemon's own. Only the install gets the store."""
    extra = {
        "PATH": tc.path_env,
        "NODE_OPTIONS": f"--max-old-space-size={cfg.build.node_max_old_space_mb}",
        "npm_config_update_notifier": "false",
        "PNPM_HOME": str(home / ".pnpm-home"),
        "XDG_CACHE_HOME": str(xdg_cache),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }
    if store is not None:
        extra["npm_config_store_dir"] = extra["PNPM_CONFIG_STORE_DIR"] = str(store)
    return sandbox.safe_env(extra, home=home)


def code_roots(dirs: isolation.ProjectDirs, extra: Sequence[Path] = ()) -> list[tuple[Path, Sequence[str]]]:
    """Everything a step running generated code may write (its disk cap): the workspace without node_modules
    (read-only to it), node_modules' cache dirs, the project's cache, and any extra writable dirs."""
    nm = dirs.work / "node_modules"
    return [(dirs.work, ("/node_modules",)), *[(nm / d, ()) for d in isolation.CODE_CACHE_DIRS],
            (dirs.cache, ()), *[(p, ()) for p in extra]]


def run(ctx: BuildContext, step: str, argv: list[str], cwd: Path, env: dict[str, str], *, network: bool,
        view: sandbox.FsView | None, user: str | None = None, disk_roots: Sequence[tuple[Path, Sequence[str]]] = (),
        disk_base: int = 0, output_root: Path | None = None, shown: str | None = None) -> sandbox.Result:
    """Run one command of the build, its lines in the build log; BuildFailed on a breach or a shutdown."""
    ctx.check_lease()
    blog = ctx.log
    blog.step("$ " + (shown or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv))))
    res = sandbox.run(argv, cwd=cwd, env=env, limits=limits(ctx.rt.cfg), on_line=blog.line,
                      network=network, output_root=output_root, layer=ctx.rt.sandbox_layer,
                      user=user, cancel=ctx.cancel, view=view, disk_roots=disk_roots, disk_base=disk_base)
    quotas.add_cpu(ctx.v.version_id, res.cpu_seconds)  # the version whose usage this step is, breach or not
    ctx.check_lease()  # a droplet paused during the step stops before going on with its result
    blog.step(f"{step}: {res.reason} (exit {res.exit_code}, {res.wall_seconds:.1f}s wall, "
              f"{res.cpu_seconds:.1f}s cpu, peak {res.peak_memory_bytes / 2**20:.0f} MiB)")
    if res.reason == "cancelled":
        raise BuildFailed("interrupted", f"{step} stopped: the daemon shut down and its grace period ran out")
    if res.reason in SANDBOX_REASONS:
        raise BuildFailed(res.reason, f"{step} stopped: {res.detail}")
    return res
