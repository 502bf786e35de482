"""Node and pnpm: where the executables are, their versions, and the exact commands a build runs."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.core.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
PINNED_PNPM = "10.34.9"
DEFAULT_REGISTRY = "https://registry.npmjs.org/"


@dataclass(frozen=True)
class Toolchain:
    """Resolved executables and their versions, recorded on every version for deterministic rebuilds."""

    node: str
    pnpm: str
    node_version: str
    pnpm_version: str

    @property
    def path_env(self) -> str:
        """A PATH holding node and pnpm and the system basics, nothing of the daemon's own PATH."""
        dirs: list[str] = []
        for exe in (self.node, self.pnpm):
            d = str(Path(exe).parent)
            if d not in dirs:
                dirs.append(d)
        for d in ("/usr/local/bin", "/usr/bin", "/bin"):
            if d not in dirs:
                dirs.append(d)
        return os.pathsep.join(dirs)


def _which(name: str) -> str | None:
    found = shutil.which(name)
    return str(Path(found).resolve()) if found else None


def find_pnpm(configured: str) -> str | None:
    """The configured pnpm, else the one `make` pinned in .tools/, else PATH."""
    if configured:
        return _which(configured) or (configured if Path(configured).is_file() else None)
    local = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "pnpm"
    if local.exists():
        return str(local)
    return _which("pnpm")


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().lstrip("v") if out.returncode == 0 else ""


@functools.lru_cache(maxsize=8)
def resolve(node: str = "node", pnpm: str = "") -> Toolchain:
    """Find node and pnpm and read their versions; raises RuntimeError naming what is missing."""
    node_path = _which(node) or (node if Path(node).is_file() else None)
    if not node_path:
        raise RuntimeError(f"node executable {node!r} not found; install Node.js 20+ or set [paths] node")
    pnpm_path = find_pnpm(pnpm)
    if not pnpm_path:
        raise RuntimeError("pnpm not found; run `make tools` or set [paths] pnpm")
    env = {"PATH": os.pathsep.join([str(Path(node_path).parent), "/usr/bin", "/bin"])}
    node_version = _version([node_path, "--version"])
    try:
        pv = subprocess.run([pnpm_path, "--version"], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, env={**env, "HOME": "/tmp"}, check=False)
        pnpm_version = pv.stdout.strip() if pv.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        pnpm_version = ""
    if not node_version:
        raise RuntimeError(f"node at {node_path} did not report a version")
    if not pnpm_version:
        raise RuntimeError(f"pnpm at {pnpm_path} did not report a version")
    return Toolchain(node=node_path, pnpm=pnpm_path, node_version=node_version, pnpm_version=pnpm_version)


def network_pins(registry: str = "", cache_dir: Path | None = None) -> list[str]:
    """The network settings of a networked pnpm step, on its command line (which outranks the environment,
    pnpm-workspace.yaml and every .npmrc): the registry (pnpm's default when none is configured), no proxy,
    TLS verified, and the metadata cache where the daemon keeps it. Empty values mean "none": pnpm then falls back
    only to the environment's proxy variables, which the daemon's step environment never holds."""
    argv = ["--registry", registry or DEFAULT_REGISTRY, "--config.proxy=", "--config.https-proxy=",
            "--config.noproxy=", "--config.strict-ssl=true"]
    if cache_dir is not None:
        argv.append(f"--config.cache-dir={cache_dir}")
    return argv


def install_argv(tc: Toolchain, store_dir: Path, registry: str = "", cache_dir: Path | None = None,
                 projects: Sequence[str] = ()) -> list[str]:
    """`pnpm install` as the seed writes it, against the shared store, quiet and non-interactive, and running no
    code of the project: no lifecycle scripts (the daemon runs the allowed ones later, without network), no
    pnpmfile hooks, no side-effects cache (build output must never land in the shared store), no switching to
    another pnpm named by `packageManager`; its network settings pinned (network_pins). `projects` (the root "."
    and a workspace's package dirs, as the daemon found them in the file set) replace the workspace's globs, which
    pnpm would match on disk: a package.json a build left in a kept output dir never becomes a project whose
    dependencies (unchecked by the daemon) this install fetches."""
    argv = [tc.pnpm, "install", "--no-frozen-lockfile", "--prefer-offline", "--store-dir", str(store_dir),
            "--reporter", "append-only", "--config.confirmModulesPurge=false", "--ignore-scripts",
            "--ignore-pnpmfile", "--config.side-effects-cache=false",
            "--config.manage-package-manager-versions=false", *network_pins(registry, cache_dir)]
    for rel in projects:
        argv += ["--workspace-packages", rel]
    return argv


def resolve_argv(tc: Toolchain, store_dir: Path, registry: str = "", cache_dir: Path | None = None) -> list[str]:
    """`pnpm install --lockfile-only` of a package.json the daemon wrote (the warm start's hot set): pnpm asks the
    pinned registry for each package's metadata (filling the shared metadata cache) and writes the lockfile with
    the registry's integrity for every name@version, downloading no tarball and running no code."""
    return [tc.pnpm, "install", "--lockfile-only", "--store-dir", str(store_dir), "--reporter", "append-only",
            "--ignore-scripts", "--ignore-pnpmfile", "--config.side-effects-cache=false",
            "--config.manage-package-manager-versions=false", *network_pins(registry, cache_dir)]


def audit_argv(tc: Toolchain, registry: str = "", cache_dir: Path | None = None) -> list[str]:
    """`pnpm audit` for critical advisories in production dependencies, as JSON; network settings pinned."""
    return [tc.pnpm, "audit", "--prod", "--audit-level", "critical", "--json",
            *network_pins(registry, cache_dir)]


# `pnpm run` reads the project's config too: a `packageManager` an install script wrote would make it fetch
# another pnpm (failing the build, or running that pnpm), and a planted pnpmfile would be loaded. The build step
# runs the daemon's pnpm on the daemon's terms, whatever the workspace says.
RUN_PINS = ("--config.manage-package-manager-versions=false", "--config.ignore-pnpmfile=true")


def build_argv(tc: Toolchain) -> list[str]:
    """`pnpm build` (the project's own build script)."""
    return [tc.pnpm, "run", *RUN_PINS, "--reporter", "append-only", "build"]


def workspace_yaml(allow_build_scripts: list[str]) -> str:
    """The daemon-owned pnpm-workspace.yaml: only the allow-listed dependencies may run install scripts."""
    names = "".join(f"\n  - {json.dumps(n)}" for n in allow_build_scripts) or " []"
    return ("# Written by previewd: install policy is the daemon's, not the generated project's.\n"
            f"onlyBuiltDependencies:{names}\n")


@dataclass(frozen=True)
class AuditOutcome:
    """What `pnpm audit` said: passed, critical (with a count), or unavailable (no advisory database reached)."""

    status: str  # passed | critical | unavailable
    critical: int
    detail: str


def parse_audit(exit_code: int | None, output: str) -> AuditOutcome:
    """Tell a real audit result from an audit that could not reach an advisory database."""
    start = output.find("{")
    data = None
    if start >= 0:
        try:
            data = json.loads(output[start:output.rfind("}") + 1])
        except ValueError:
            data = None
    if not isinstance(data, dict) or "error" in data or "metadata" not in data:
        why = ""
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            why = str(data["error"].get("message") or data["error"].get("code") or "")
        tail = output.strip().splitlines()[-1:] if output.strip() else ["no output"]
        return AuditOutcome("unavailable", 0, why or tail[0][:300])
    vulns = data.get("metadata", {}).get("vulnerabilities", {})
    critical = int(vulns.get("critical", 0) or 0) if isinstance(vulns, dict) else 0
    if critical or exit_code not in (0, None):
        return AuditOutcome("critical", max(critical, 1), f"{critical} critical advisories")
    return AuditOutcome("passed", 0, "no critical advisories")


def for_config(cfg: Config) -> Toolchain:
    """The toolchain the config names (`[paths] node`, `pnpm`); RuntimeError naming what is missing."""
    return resolve(cfg.paths.node, cfg.paths.pnpm)
