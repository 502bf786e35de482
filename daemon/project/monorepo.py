"""pnpm workspaces in a generated project: the policy merged into its pnpm-workspace.yaml, its packages, the target.

A project is a workspace when its `pnpm-workspace.yaml` lists `packages:` globs. The daemon keeps only those
globs (checked: relative, inside the workspace, capped) and writes its own install policy beside them; a setting
that would undo the policy (which dependencies may build, the store, pnpmfiles, the package manager) fails the
version with `invalid_output`. Packages are found from the file set itself, never from the disk, so no link or
stray directory can add one. Long because the workspace file, the package graph, the target choice and the
incremental selection are one policy read in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from daemon.core.db import ProjectVersion
from daemon.project import frameworks, toolchain
from daemon.project.buildlog import BuildLog
from daemon.project.failures import BuildFailed
from sandbox import safepath

WORKSPACE_FILE = "pnpm-workspace.yaml"
MAX_PACKAGES = 50
MAX_PATTERNS = 50
MAX_YAML_BYTES = 64 * 1024
MAX_TARGET_CHARS = 240
BUILT_MARKER = ".previewd-built.json"

# Settings of pnpm-workspace.yaml that would undo the daemon's install policy (compared without case, `-`, `_`):
# which dependencies run build scripts, lifecycle-script switches, the store and caches, pnpmfile hooks, the
# package manager and its versions, registries and dependency rewrites that reach outside the registry.
_REFUSED = {
    "onlybuiltdependencies", "onlybuiltdependenciesfile", "neverbuiltdependencies", "ignoredbuiltdependencies",
    "dangerouslyallowallbuilds", "allowbuilds", "allowedbuilds", "strictdepbuilds", "ignorescripts",
    "enableprepostscripts", "unsafeperm", "childconcurrency", "sideeffectscache", "sideeffectscachereadonly",
    "storedir", "virtualstoredir", "modulesdir", "cachedir", "statedir", "globaldir", "globalbindir",
    "pnpmfile", "globalpnpmfile", "ignorepnpmfile", "hooks", "packagemanager", "managepackagemanagerversions",
    "packagemanagerstrict", "packagemanagerstrictversion", "usenodeversion", "nodeversion", "executionenv",
    "configdependencies", "registry", "registries", "overrides", "packageextensions", "patcheddependencies",
    "allowunusedpatches", "nodelinker", "scriptshell", "shellemulator", "npmpath", "verifystoreintegrity",
    "trustpolicy", "minimumreleaseage",
}
# Kept from the generated file: only the globs. Anything else (catalogs, hoisting, peers...) is dropped with a note.
_KEPT = {"packages"}
_NAME_RE = re.compile(r"^(@[a-z0-9~][a-z0-9._~-]*/)?[a-z0-9~][a-z0-9._~-]*$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._@+~-]+$")
_GLOB_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._@+~*?\[\]!-]+$")
_DEP_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")


@dataclass(frozen=True)
class Package:
    """One package of the workspace: its directory relative to the root ("." for the root) and manifest."""

    path: str
    name: str
    scripts: Mapping[str, str]
    deps: frozenset[str]  # every dependency name it declares

    @property
    def label(self) -> str:
        """How the log and error messages name it: `name (path)`."""
        return f"{self.name or '(unnamed)'} ({self.path})"

    def is_web_app(self) -> bool:
        """Has a `build` script and depends on a web framework the detector knows."""
        return bool(self.scripts.get("build")) and any(pkg in self.deps for _, pkg, _ in frameworks.FRAMEWORKS)


@dataclass
class Layout:
    """What the pipeline needs of a project: its packages (none for a single package) and the build target."""

    packages: tuple[Package, ...] = ()
    target: Package | None = None

    @property
    def is_workspace(self) -> bool:
        """A pnpm workspace (else a single package)."""
        return bool(self.packages)

    @property
    def dirs(self) -> tuple[str, ...]:
        """The package directories below the root (the root excluded), in dependency order."""
        return tuple(p.path for p in self.packages if p.path != ".")

    @property
    def manifests(self) -> tuple[str, ...]:
        """Every package.json whose change means a new install."""
        return ("package.json", *(f"{d}/package.json" for d in self.dirs))

    @property
    def local_names(self) -> frozenset[str]:
        """The workspace's own package names (`workspace:` may name only these)."""
        return frozenset(p.name for p in self.packages if p.name)


# -- the workspace file ----------------------------------------------------------------------------------------

def _refuse(message: str) -> BuildFailed:
    return BuildFailed("invalid_output", f"{WORKSPACE_FILE}: {message}")


def _no_aliases(text: str) -> None:
    """Anchors and aliases are refused: with them a few bytes expand to a huge document (a billion laughs)."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _refuse("YAML anchors and aliases are not accepted")
    except yaml.YAMLError as exc:
        raise _refuse(f"not valid YAML: {str(exc)[:300]}") from None


def _norm_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def parse_workspace(text: str, *, strict: bool) -> tuple[list[str], list[str]]:
    """(packages globs, notes) of a pnpm-workspace.yaml. `strict` (the generator wrote it): a setting that would
    undo the install policy is refused; otherwise (the daemon's own file from the base version) it is dropped."""
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise _refuse(f"over {MAX_YAML_BYTES} bytes")
    _no_aliases(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _refuse(f"not valid YAML: {str(exc)[:300]}") from None
    if data is None:
        return [], []
    if not isinstance(data, dict):
        raise _refuse("must be a mapping (packages: [globs])")
    notes: list[str] = []
    refused = [str(k) for k in data if _norm_key(str(k)) in _REFUSED]
    if refused and strict:
        raise _refuse(f"{', '.join(sorted(refused))} would undo the daemon's install policy (which dependencies "
                      "may run build scripts, the store, pnpmfiles, the package manager); remove it")
    dropped = sorted(str(k) for k in data if str(k) not in _KEPT and _norm_key(str(k)) not in _REFUSED)
    if dropped:
        notes.append(f"{WORKSPACE_FILE}: ignored {', '.join(dropped)} (only `packages` is kept; install settings "
                     "are the daemon's)")
    raw = data.get("packages")
    if raw is None:
        return [], notes
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise _refuse("packages must be a list of glob strings")
    if len(raw) > MAX_PATTERNS:
        raise _refuse(f"{len(raw)} package globs, over the cap of {MAX_PATTERNS}")
    return [check_glob(p) for p in raw], notes


def check_glob(pattern: str) -> str:
    """A `packages:` glob that can only match directories inside the workspace (`!` excludes)."""
    body = pattern[1:] if pattern.startswith("!") else pattern
    body = body[2:] if body.startswith("./") else body
    body = body.rstrip("/")
    if not body or len(body) > MAX_TARGET_CHARS:
        raise _refuse(f"package glob {pattern!r} is empty or too long")
    if body.startswith("/") or "\\" in body or "\0" in body or "{" in body:
        raise _refuse(f"package glob {pattern!r} must be a plain relative glob inside the workspace")
    for seg in body.split("/"):
        if seg in ("", ".", "..") or not _GLOB_SEGMENT_RE.match(seg):
            raise _refuse(f"package glob {pattern!r} leaves the workspace or has an invalid segment {seg!r}")
        if seg.casefold() in ("node_modules", ".git"):
            raise _refuse(f"package glob {pattern!r} points into {seg}")
    return ("!" if pattern.startswith("!") else "") + body


def policy_yaml(globs: Sequence[str], allow_build_scripts: Sequence[str]) -> str:
    """The file pnpm reads: the workspace's globs and the daemon's install policy (JSON strings are valid YAML)."""
    base = toolchain.workspace_yaml(list(allow_build_scripts))
    if not globs:
        return base
    return base + "packages:" + "".join(f"\n  - {json.dumps(g)}" for g in globs) + "\n"


# -- packages --------------------------------------------------------------------------------------------------

def _match(pattern: str, parts: Sequence[str]) -> bool:
    """Segment-wise glob match; `**` spans any number of segments (zero included). Memoised: a glob of many
    `**` would otherwise try every split of a deep path (exponential)."""
    pat = pattern.split("/")
    memo: dict[tuple[int, int], bool] = {}

    def go(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(pat):
            ok = j == len(parts)
        elif pat[i] == "**":
            ok = any(go(i + 1, k) for k in range(j, len(parts) + 1))
        else:
            ok = j < len(parts) and fnmatchcase(parts[j], pat[i]) and go(i + 1, j + 1)
        memo[(i, j)] = ok
        return ok

    return go(0, 0)


def expand(globs: Sequence[str], files: Mapping[str, str]) -> list[str]:
    """The package directories the globs select: directories of the file set holding a package.json."""
    include = [g for g in globs if not g.startswith("!")]
    exclude = [g[1:] for g in globs if g.startswith("!")]
    found: list[str] = []
    for path in sorted(files):
        parts = path.split("/")
        if parts[-1] != "package.json" or len(parts) < 2:
            continue
        d = parts[:-1]
        if any(_match(g, d) for g in include) and not any(_match(g, d) for g in exclude):
            if not all(_SEGMENT_RE.match(s) for s in d):  # it goes into a --filter selector
                raise _refuse(f"package directory {'/'.join(d)!r}: names must be of [A-Za-z0-9._@+~-]")
            found.append("/".join(d))
            if len(found) > MAX_PACKAGES:
                raise _refuse(f"the globs select over {MAX_PACKAGES} packages")
    return sorted(found)


def _package(files: Mapping[str, str], path: str) -> Package:
    rel = "package.json" if path == "." else f"{path}/package.json"
    try:
        data = json.loads(files.get(rel, "{}"))
    except ValueError:
        raise BuildFailed("invalid_output", f"{rel} is not valid JSON") from None
    if not isinstance(data, dict):
        raise BuildFailed("invalid_output", f"{rel} must be a JSON object")
    raw = data.get("scripts")
    scripts = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(raw, dict) else {}
    deps: set[str] = set()
    for section in _DEP_SECTIONS:
        value = data.get(section)
        if isinstance(value, dict):
            deps.update(str(k) for k in value)
    name = data.get("name")
    return Package(path=path, name=name if isinstance(name, str) else "", scripts=scripts, deps=frozenset(deps))


def _ordered(packages: list[Package]) -> tuple[Package, ...]:
    """Dependencies before their dependents (pnpm's order for lifecycle scripts); a cycle keeps path order."""
    by_name = {p.name: p for p in packages if p.name}
    out: list[Package] = []
    seen: set[str] = set()

    def visit(p: Package, stack: frozenset[str]) -> None:
        if p.path in seen or p.path in stack:
            return
        for dep in sorted(p.deps):
            if dep in by_name:
                visit(by_name[dep], stack | {p.path})
        seen.add(p.path)
        out.append(p)

    for p in packages:
        visit(p, frozenset())
    return tuple(out)


# -- the target ------------------------------------------------------------------------------------------------

def check_target_field(value: str) -> str:
    """A request's `targetPackage`: a package name, or a relative path that stays inside the workspace.
    ValueError says why not."""
    if not value or len(value) > MAX_TARGET_CHARS:
        raise ValueError(f"must be 1-{MAX_TARGET_CHARS} characters")
    if _NAME_RE.match(value):
        return value
    path = value[2:] if value.startswith("./") else value
    if path.startswith("/") or "\\" in path:
        raise ValueError("must be a package name or a path relative to the workspace root")
    segments = path.rstrip("/").split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise ValueError("must stay inside the workspace (no '..', '.' or empty segments)")
    if not all(_SEGMENT_RE.match(s) for s in segments) or any(s.casefold() == "node_modules" for s in segments):
        raise ValueError("must be a package name or a path of [A-Za-z0-9._@+~-] segments outside node_modules")
    return "/".join(segments)


def _find(packages: Sequence[Package], wanted: str) -> Package | None:
    path = wanted[2:] if wanted.startswith("./") else wanted
    path = path.rstrip("/") or "."
    return next((p for p in packages if p.path == path), None) or next(
        (p for p in packages if p.name and p.name == wanted), None)


def pick_target(packages: Sequence[Package], requested: str | None, hints: Sequence[str | None] = ()) -> Package:
    """The package to preview: the request's; else the first of `hints` that is a package (the contract
    metadata's, then the base version's); else the only web app (a build script and a framework). invalid_output
    when the request names no package, or no hint holds and there is no web app or several (listing them)."""
    names = ", ".join(p.label for p in packages)
    if requested:
        found = _find(packages, requested)
        if found is None:
            raise BuildFailed("invalid_output", f"targetPackage {requested!r} is not a package of the workspace "
                                                f"(packages: {names})")
        return found
    for hint in hints:
        found = _find(packages, hint) if hint else None
        if found is not None:
            return found
    candidates = [p for p in packages if p.is_web_app()]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BuildFailed("invalid_output", "no workspace package has a `build` script and a web framework "
                                            f"dependency; name one with targetPackage (packages: {names})")
    raise BuildFailed("invalid_output", "the workspace has several web apps; name one with targetPackage "
                                        f"(candidates: {', '.join(p.label for p in candidates)})")


# -- putting it together ---------------------------------------------------------------------------------------

def prepare(files: dict[str, str], base_files: Mapping[str, str] | None, requested: str | None,
            hints: Sequence[str | None], allow_build_scripts: Sequence[str], blog: BuildLog) -> Layout:
    """Write the daemon's pnpm-workspace.yaml into `files` (the workspace's globs kept) and return the layout.

    The file is strict when the generator wrote it; one carried over unchanged from the base version is the
    daemon's own (its policy keys are replaced by today's policy). `requested` must name a package; `hints`
    (pick_target) are only preferences."""
    text = files.get(WORKSPACE_FILE)
    globs: list[str] = []
    if text is not None:
        inherited = base_files is not None and base_files.get(WORKSPACE_FILE) == text
        globs, notes = parse_workspace(text, strict=not inherited)
        for note in notes:
            blog.step(note)
    files[WORKSPACE_FILE] = policy_yaml(globs, allow_build_scripts)
    if not globs:
        if requested and requested not in (".", "./") and requested != _package(files, ".").name:
            raise BuildFailed("invalid_output", f"targetPackage {requested!r}: the project is a single package, "
                                                "not a workspace")
        return Layout()
    dirs = expand(globs, files)
    packages = _ordered([_package(files, ".")] + [_package(files, d) for d in dirs])
    seen: dict[str, str] = {}
    for p in packages:
        if p.name and p.name in seen:
            raise BuildFailed("invalid_output", f"two workspace packages are named {p.name!r}: {seen[p.name]} and "
                                                f"{p.path}")
        seen[p.name] = p.path
    target = pick_target(packages, requested, hints)
    blog.step(f"workspace: {len(dirs)} packages ({', '.join(p.label for p in packages if p.path != '.')}); "
              f"target {target.label}")
    return Layout(packages=packages, target=target)


def inherited_target(v: ProjectVersion) -> str | None:
    """A rebuild's preference: the target its base version built (a request may name another)."""
    if v.kind != "rebuild" or not v.parent_version_id:
        return None
    base = ProjectVersion.get_or_none(ProjectVersion.version_id == v.parent_version_id)
    return base.target_package if base is not None else None


def needed_by(layout: Layout, target: Package) -> list[Package]:
    """The target and every workspace package it depends on, transitively (what `--filter target...` selects)."""
    by_name = {p.name: p for p in layout.packages if p.name}
    out: dict[str, Package] = {}
    todo = [target]
    while todo:
        p = todo.pop()
        if p.path in out:
            continue
        out[p.path] = p
        todo += [by_name[d] for d in p.deps if d in by_name]
    return [p for p in layout.packages if p.path in out]


def fingerprints(layout: Layout, files: Mapping[str, str]) -> dict[str, str]:
    """A hash of each package's files (a nested package's files are its own), and of the root's own files."""
    dirs = sorted(layout.dirs, key=len, reverse=True)
    hashes = {p.path: hashlib.sha256() for p in layout.packages}
    for path in sorted(files):
        owner = next((d for d in dirs if path.startswith(d + "/")), ".")
        hashes[owner].update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return {k: h.hexdigest() for k, h in hashes.items()}


def selection(layout: Layout, prints: Mapping[str, str], built: Mapping[str, Any] | None) -> list[Package] | None:
    """The packages to build: None for the whole `target...`; else the changed packages among those the target
    needs, plus what depends on them (and always the target). `built` is the marker of the last good build."""
    assert layout.target is not None
    if layout.target.path == ".":
        return None
    if not built or not isinstance(built.get("packages"), dict) or built.get("target") != layout.target.path:
        return None
    before: dict[str, Any] = built["packages"]
    if prints.get(".") != before.get("."):
        return None  # the root's own files (shared config) changed: everything may differ
    needed = needed_by(layout, layout.target)
    by_name = {p.name: p for p in needed if p.name}
    dirty = {p.path for p in needed if prints.get(p.path) != before.get(p.path)}
    changed = True
    while changed:  # dependents of a dirty package are dirty
        changed = False
        for p in needed:
            if p.path not in dirty and any(by_name[d].path in dirty for d in p.deps if d in by_name):
                dirty.add(p.path)
                changed = True
    dirty.add(layout.target.path)
    return [p for p in needed if p.path in dirty and p.path != "."]


def build_argv(tc: toolchain.Toolchain, layout: Layout, chosen: Sequence[Package] | None) -> list[str]:
    """`pnpm --filter <target>... run build`, or one `--filter` per chosen package (pnpm orders them)."""
    assert layout.target is not None
    filters = [f"{{./{layout.target.path}}}..."] if chosen is None else [f"{{./{p.path}}}" for p in chosen]
    if layout.target.path == ".":
        filters = ["{.}..."]
    argv = [tc.pnpm]
    for f in filters:
        argv += ["--filter", f]
    return [*argv, "run", *toolchain.RUN_PINS, "--reporter", "append-only", "build"]


def _declared_dirs(pkg: Mapping[str, Any]) -> list[str]:
    """Top-level dirs a library's package.json points into (`main`, `module`, `types`, `exports`...): where its
    build writes what its dependents import."""
    found: list[str] = []
    todo: list[Any] = [pkg.get(k) for k in ("main", "module", "types", "typings", "browser", "exports")]
    while todo and len(found) < 16:
        value = todo.pop()
        if isinstance(value, dict):
            todo += list(value.values())[:64]
        elif isinstance(value, list):
            todo += value[:64]
        elif isinstance(value, str):
            parts = [p for p in value.split("/") if p not in ("", ".")]
            if len(parts) > 1 and _SEGMENT_RE.match(parts[0]) and parts[0] not in ("..", "node_modules"):
                found.append(parts[0])
    return found


def output_keep(layout: Layout, files: Mapping[str, str]) -> list[str]:
    """What the workspace keeps between builds besides its files: each package's node_modules and the output
    dirs of packages other than the root (so an unchanged package need not be built again): the detector's
    candidates and the dirs its package.json exports from, when they hold no sources."""
    keep = [f"{d}/node_modules" for d in layout.dirs]
    for d in layout.dirs:
        try:
            pkg = json.loads(files.get(f"{d}/package.json", "{}") or "{}")
        except ValueError:
            pkg = {}
        pkg = pkg if isinstance(pkg, dict) else {}
        _, candidates = frameworks.detect_from(pkg)
        for rel in (*candidates, *_declared_dirs(pkg)):
            top = rel.split("/")[0]
            if top in frameworks.SOURCE_DIRS or any(p.startswith(f"{d}/{top}/") or p == f"{d}/{top}" for p in files):
                continue
            if f"{d}/{top}" not in keep:
                keep.append(f"{d}/{top}")
    return keep


def target_outputs(workspace: Path, target: Package) -> tuple[str, ...]:
    """The target's candidate output dirs, relative to the root, that hold no sources (removed before a build)."""
    _, candidates = frameworks.detect(workspace, target.path)
    prefix = "" if target.path == "." else target.path + "/"
    return tuple(prefix + c for c in candidates if c.split("/")[0] not in frameworks.SOURCE_DIRS)


def _read_built(workspace: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(safepath.read_regular(workspace, ["node_modules", BUILT_MARKER], 1 << 20))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plan_build(tc: toolchain.Toolchain, layout: Layout, files: Mapping[str, str], workspace: Path,
               blog: BuildLog) -> tuple[list[str], dict[str, str]]:
    """The build command for a workspace (whole `target...`, or only what changed since the last good build and
    its dependents) and the package fingerprints to mark once it succeeds. The log names the packages built."""
    assert layout.target is not None
    prints = fingerprints(layout, files)
    built = _read_built(workspace)
    # Until this build succeeds, the outputs on disk match no recorded sources: a failure means a full build next.
    safepath.remove_tree(workspace, ["node_modules", BUILT_MARKER])
    chosen = selection(layout, prints, built)
    needed = [p for p in needed_by(layout, layout.target) if p.path != "." and p.scripts.get("build")]
    if chosen is None:
        blog.step(f"workspace build: {layout.target.label} and its workspace dependencies; packages built: "
                  f"{', '.join(p.label for p in needed) or 'none'}")
    else:
        built_now = [p for p in chosen if p.scripts.get("build")]
        kept = [p for p in needed if p not in chosen]
        blog.step(f"workspace build: only changed packages and their dependents; packages built: "
                  f"{', '.join(p.label for p in built_now) or 'none'}; unchanged, not rebuilt: "
                  f"{', '.join(p.label for p in kept) or 'none'}")
    return build_argv(tc, layout, chosen), prints


def mark_built(workspace: Path, layout: Layout, prints: Mapping[str, str]) -> None:
    """Record which sources the workspace's outputs were built from (node_modules is the daemon's, read-only to
    generated code)."""
    assert layout.target is not None
    data = {"target": layout.target.path, "packages": dict(prints)}
    with contextlib.suppress(OSError):
        safepath.write_atomic(workspace, ["node_modules", BUILT_MARKER], json.dumps(data).encode())
