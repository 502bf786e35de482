"""Every third-party module the code imports comes from a distribution pyproject.toml declares (issue 25).

The daemon's packages may use only `[project] dependencies`; tests and benchmarks may also use the `dev` extra.
A module that arrives only as another package's dependency breaks the day that package drops it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OWN = {"daemon", "sandbox", "sync", "tests", "bench", "__future__"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def third_party_imports(dirs: tuple[str, ...]) -> dict[str, str]:
    """Top-level module -> one file that imports it, for every non-stdlib, non-project import under `dirs`."""
    found: dict[str, str] = {}
    for d in dirs:
        for path in sorted((REPO / d).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def undeclared(dirs: tuple[str, ...], declared: set[str]) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    bad = []
    for module, where in sorted(third_party_imports(dirs).items()):
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & declared:
            bad.append(f"{module} (imported by {where}; installed from {', '.join(sorted(dists)) or 'nothing'})")
    return bad


PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME = {_name(r) for r in PROJECT["dependencies"]}
DEV = {_name(r) for r in PROJECT["optional-dependencies"]["dev"]}


def test_the_daemon_imports_only_declared_dependencies() -> None:
    bad = undeclared(("daemon", "sandbox", "sync"), RUNTIME)
    assert not bad, "declare these in [project] dependencies:\n  " + "\n  ".join(bad)


def test_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    bad = undeclared(("tests", "bench"), RUNTIME | DEV)
    assert not bad, "declare these in the dev extra:\n  " + "\n  ".join(bad)


def test_the_walker_finds_a_known_import() -> None:
    assert third_party_imports(("sync",))["psycopg"].startswith("sync/")
