"""Command generators for tests: tiny dependency-free projects, so a build takes a second and needs no install.

A test writes a generator script with `write_generator(dir, body)`; `body` runs with `req` (the request JSON)
in scope and must set `build` (the package.json build script) and `files` (path -> content); it may set `deps`
and `extra` (more package.json fields, e.g. other scripts).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def contract_json(build: str, files: dict[str, str], name: str = "tiny", deps: dict[str, str] | None = None,
                  extra: dict[str, object] | None = None) -> str:
    """The seed's full contract for a project whose only script is `build` (and whose dependencies are `deps`);
    `extra` adds package.json fields (its `scripts` are merged with `build`)."""
    pkg: dict[str, object] = {"name": name, "version": "0.0.0", "private": True, "scripts": {"build": build}}
    if deps:
        pkg["dependencies"] = deps
    for key, value in (extra or {}).items():
        if key == "scripts" and isinstance(value, dict):
            pkg["scripts"] = {**value, "build": build}
        else:
            pkg[key] = value
    return json.dumps({
        "name": name, "slug": name, "description": "a test project", "version": "0.1.0", "author": "tests",
        "repository": "", "license": "MIT", "tech_stack": [],
        "metadata": {"tags": [], "industry_tags": [], "style_tags": [], "core_pages": {}, "components": [],
                     "design_tokens": {}, "rsc_path": ""},
        "templateFiles": [{"path": "package.json", "content": json.dumps(pkg)}],
        "files": [{"path": p, "content": c} for p, c in files.items()],
    })


def write_generator(directory: Path, body: str, name: str = "gen.py") -> Path:
    """Write an executable generator script; returns its path (use [sys.executable, path] as the command)."""
    script = (f"import json, sys\nsys.path.insert(0, {str(REPO)!r})\n"
              "from tests.fakes.tiny_generator import contract_json\n"
              "req = json.load(sys.stdin)\n" + textwrap.dedent(body).strip()
              + "\nprint(contract_json(build, files, deps=globals().get('deps'), extra=globals().get('extra')))\n")
    path = directory / name
    path.write_text(script)
    return path


def generator_config(gen: Path, extra: str = "") -> str:
    """The TOML that points a daemon at a generator script (audit off: these projects have no dependencies)."""
    return (f'[generator]\nbackend = "command"\ncommand = ["{sys.executable}", "{gen}"]\n'
            f'[build]\naudit = "off"\n{textwrap.dedent(extra)}')


# The commonest one: a static page that shows the prompt.
ECHO_PAGE = '''
build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>"}
'''
