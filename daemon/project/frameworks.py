"""Framework detection: read package.json to name the framework and find the build output directory."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox import safepath

MAX_PACKAGE_JSON = 1 << 20

# Checked in this order; the first framework whose package appears in the dependencies wins.
FRAMEWORKS: list[tuple[str, str, tuple[str, ...]]] = [
    ("nextjs", "next", ("out", ".next")),
    ("sveltekit", "@sveltejs/kit", (".svelte-kit/cloudflare", "build")),
    ("astro", "astro", ("dist",)),
    ("nuxt", "nuxt", (".output/public", "dist")),
    ("remix", "@remix-run/dev", ("build/client", "public/build")),
    ("angular", "@angular/core", ("dist",)),
    ("vue", "vue", ("dist",)),
    ("svelte", "svelte", ("dist", "public")),
    ("react", "react", ("dist", "build")),
    ("vite", "vite", ("dist",)),
]
# Output candidates that hold the project's own sources in most setups (static assets the bundler copies, code):
# never cleared as stale output, never left out of a snapshot.
SOURCE_DIRS = frozenset({"public", "src"})
FALLBACK_DIRS = ("dist", "out", "build", ".next", ".svelte-kit/cloudflare", ".output/public", "public")


def read_package_json(workspace: Path, package: str = "") -> dict[str, object]:
    """package.json (of the workspace package at `package`, default the root) as a dict; {} when absent or
    unreadable (the install step reports that properly).

    Read after the build too, so never through a link and never from a FIFO (which would block the worker).
    """
    parts = [p for p in package.split("/") if p not in ("", ".")]
    try:
        data = json.loads(safepath.read_regular(workspace, [*parts, "package.json"], MAX_PACKAGE_JSON))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def detect(workspace: Path, package: str = "") -> tuple[str | None, tuple[str, ...]]:
    """(framework name or None, candidate output dirs in preference order, relative to the package)."""
    return detect_from(read_package_json(workspace, package))


def detect_from(pkg: dict[str, object]) -> tuple[str | None, tuple[str, ...]]:
    """`detect` on a package.json already read."""
    deps: set[str] = set()
    for key in ("dependencies", "devDependencies"):
        section = pkg.get(key)
        if isinstance(section, dict):
            deps.update(str(k) for k in section)
    for name, package, dirs in FRAMEWORKS:
        if package in deps:
            return name, dirs + tuple(d for d in FALLBACK_DIRS if d not in dirs)
    return None, FALLBACK_DIRS


def find_output(workspace: Path, package: str = "") -> tuple[str | None, str | None]:
    """(framework, output dir relative to the workspace root) or (framework, None) when no output dir holds an
    index; `package` is the workspace package whose output it is (default the root)."""
    framework, candidates = detect(workspace, package)
    prefix = "" if package in ("", ".") else package.rstrip("/") + "/"
    for rel in candidates:
        d = workspace / (prefix + rel)
        # `public` holds static sources in most setups; it is output only when it has an index.html.
        if (d.is_dir() and not d.is_symlink() and any(d.iterdir())
                and ((d / "index.html").is_file() or rel != "public")):
            return framework, prefix + rel
    return framework, None


OUTPUT_DIRS = tuple(sorted({d.split("/")[0] for _, _, dirs in FRAMEWORKS for d in dirs} | {"dist", "out", "build"}))
