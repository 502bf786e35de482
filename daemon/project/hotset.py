"""What the warm start asks pnpm: the registry's integrity for the fleet's hot packages, and a store prune when the
store outgrew its budget. The daemon's own pnpm, on a package.json the daemon wrote from checked names, in a
scratch dir: no generated code is involved, and its network settings are pinned like every networked install."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from daemon.core.config import Config
from daemon.core.db import ProjectVersion, database
from daemon.core.layout import Layout
from daemon.project import toolchain
from sandbox import safepath
from sync.storecache import Package, lockfile_packages, valid_package

log = logging.getLogger("previewd.warmstart")
RESOLVE_TIMEOUT_S = 300
PRUNE_TIMEOUT_S = 600
MAX_LOCKFILE = 64 * 2**20


class PnpmStoreTools:
    """pnpm for the warm start, on this droplet's store and metadata cache."""

    def __init__(self, cfg: Config, layout: Layout) -> None:
        self.cfg = cfg
        self.layout = layout

    def _env(self, home: Path) -> dict[str, str]:
        tc = toolchain.for_config(self.cfg)
        return {"PATH": tc.path_env, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_CONFIG_HOME": str(home / ".config"), "npm_config_update_notifier": "false",
                "npm_config_store_dir": str(self.layout.store_dir),
                "PNPM_CONFIG_STORE_DIR": str(self.layout.store_dir)}

    def registry_integrities(self, packages: list[Package]) -> Mapping[str, str]:
        """name@version -> the integrity the pinned registry's metadata gives it, for these packages (one
        `pnpm install --lockfile-only`, which also fills the metadata cache the first builds will read)."""
        wanted = [p for p in packages if valid_package(p.name, p.version)]
        if not wanted:
            return {}
        tc = toolchain.for_config(self.cfg)
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.layout.tmp, prefix="warm-") as td:
            work = Path(td) / "w"
            work.mkdir()
            # Aliases let one package.json hold every version of a name the fleet uses.
            deps = {f"h{i}": f"npm:{p.name}@{p.version}" for i, p in enumerate(wanted)}
            (work / "package.json").write_text(json.dumps({"name": "previewd-warm", "private": True,
                                                           "dependencies": deps}))
            cache = self.layout.data_dir / "cache"
            cache.mkdir(exist_ok=True)
            argv = toolchain.resolve_argv(tc, self.layout.store_dir, self.cfg.build.registry, cache / "pnpm")
            res = subprocess.run(argv, cwd=work, env=self._env(Path(td)), capture_output=True, text=True,
                                 timeout=RESOLVE_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
            if res.returncode != 0:
                tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
                raise RuntimeError(f"pnpm could not resolve the hot set (exit {res.returncode}): {' | '.join(tail)}")
            # pnpm alone wrote this dir, but the one door reads every lockfile the same way
            text = safepath.read_regular(work, ["pnpm-lock.yaml"], MAX_LOCKFILE).decode("utf-8", "replace")
        return {p.pkg_id: p.integrity for p in lockfile_packages(text)}

    def prune(self) -> None:
        """`pnpm store prune`: packages no project's node_modules references leave the store. Skipped while a build
        runs (its install may be linking packages nothing references yet); the next check tries again."""
        with database.connection_context():
            if ProjectVersion.select().where(ProjectVersion.status == "building").exists():
                log.info("store over its budget: prune skipped while a build runs")
                return
        tc = toolchain.for_config(self.cfg)
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.layout.tmp, prefix="prune-") as td:
            res = subprocess.run([tc.pnpm, "store", "prune", "--store-dir", str(self.layout.store_dir)], cwd=td,
                                 env=self._env(Path(td)), capture_output=True, text=True, timeout=PRUNE_TIMEOUT_S,
                                 stdin=subprocess.DEVNULL, check=False)
        if res.returncode != 0:
            log.warning("pnpm store prune exited %s: %s", res.returncode, (res.stderr or res.stdout)[-300:])
