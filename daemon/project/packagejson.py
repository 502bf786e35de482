"""The daemon's policy on a generated package.json: no tool switching, no pnpm settings, registry dependencies only."""

from __future__ import annotations

import json
import re

from daemon.project.buildlog import BuildLog
from daemon.project.failures import BuildFailed

# package.json fields that make pnpm switch or fetch tools (another pnpm, a Node runtime) or carry its own settings.
_STRIPPED_FIELDS = ("packageManager", "devEngines", "pnpm")
_DEP_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies", "resolutions",
                 "overrides")
_NPM_ALIAS = re.compile(r"^npm:(@[^/@\s]+/)?[^/@:\s\\]+(@[^:/\\]*)?$")


def _registry_spec(spec: str) -> bool:
    """A version range, dist-tag or `npm:` alias: resolved from the registry, nowhere else."""
    if spec.startswith("npm:"):
        return bool(_NPM_ALIAS.match(spec))
    return not any(c in spec for c in ":/\\") and "\0" not in spec


def _workspace_spec(name: str, spec: str, local: frozenset[str]) -> bool:
    """`workspace:<range>` naming a package of this workspace (pnpm links it from inside the workspace)."""
    return spec.startswith("workspace:") and name in local and _registry_spec(spec[len("workspace:"):] or "*")


def _check_specs(section: str, value: object, where: str = "package.json",
                 local: frozenset[str] = frozenset()) -> None:
    if isinstance(value, dict):
        for name, spec in value.items():
            if isinstance(spec, dict):
                _check_specs(section, spec, where, local)
            elif not isinstance(spec, str) or not (_registry_spec(spec) or _workspace_spec(str(name), spec, local)):
                raise BuildFailed("invalid_output", f"{where} {section}: {name!r} -> {spec!r} is not a registry "
                                                    "version (file:, link:, git and URL dependencies, and workspace: "
                                                    "outside the workspace's own packages, are refused: they reach "
                                                    "outside the project or the registry)")


def sanitize(files: dict[str, str], blog: BuildLog, manifests: tuple[str, ...] = ("package.json",),
             local: frozenset[str] = frozenset()) -> dict[str, str]:
    """Install policy belongs to the daemon: drop a generated package.json's own pnpm settings and any field that
    makes pnpm switch or fetch tools (`packageManager`, `devEngines`), and refuse dependencies that are not
    registry versions (BuildFailed invalid_output). In a workspace: every package's manifest, and `workspace:`
    specs are accepted for the workspace's own packages (`local`)."""
    for where in manifests:
        text = files.get(where)
        if text is None:
            continue
        try:
            pkg = json.loads(text)
        except ValueError:
            continue  # pnpm install reports a broken package.json better than we can
        if not isinstance(pkg, dict):
            continue
        for section in _DEP_SECTIONS:
            _check_specs(section, pkg.get(section), where, local)
        dropped = [f for f in _STRIPPED_FIELDS if f in pkg]
        if dropped:
            for f in dropped:
                pkg.pop(f)
            blog.step(f"{where}: removed {', '.join('`' + f + '`' for f in dropped)} (install policy and the "
                      "toolchain are the daemon's)")
            files = {**files, where: json.dumps(pkg, indent=2) + "\n"}
    return files
