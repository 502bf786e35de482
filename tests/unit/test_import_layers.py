"""The import graph of `daemon`, `sandbox` and `sync` has no cycle and no upward arrow (issue 13, item 2).

Every import counts: module-level, function-local and `if TYPE_CHECKING:` ones, relative ones resolved, and
`from pkg import mod` as an import of `pkg.mod` when that is a module. Importing `a.b.c` is an arrow to
`a.b.c` only (not to the packages `a` and `a.b` that Python also runs first), as import-linter counts it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("daemon", "sandbox", "sync")

# Arrows run downwards only: a daemon module may import modules of its own rank or lower. The table is
# import-linter's layers contract in pyproject.toml (`make lint` runs `lint-imports`, which also follows
# indirect chains); this walker reads the same table so the suite names every upward arrow by its rank.
def _layers_from_pyproject() -> dict[str, int]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["id"] == "daemon-layers")
    (container,) = contract["containers"]
    ranks = {container: 0}
    for rank_, layer in enumerate(reversed(contract["layers"])):
        for name in re.split(r"[:|]", layer):
            ranks[f"{container}.{name.strip()}"] = rank_
    return ranks


LAYERS = _layers_from_pyproject()

MAX_LINES = 400
LONG_REASON = "long because"


def discover(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py under the packages (namespace packages included)."""
    modules: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The known module a dotted name lands in: itself, else its longest known prefix (a name in a module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            found = _owner(target, modules)
            if found is not None:
                out.add(found)
    out.discard(module)
    return out


def import_graph(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = discover(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        members.append(m)
                        if m == node:
                            break
                    if len(members) > 1:
                        found.append(sorted(members))
    return found


def _shortest_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a path that ends where it starts."""
    inside = set(members)
    start = members[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & inside):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """One line per import cycle: the path, then every module caught in it."""
    lines = []
    for members in _components(graph):
        path = " -> ".join(_shortest_cycle(graph, members))
        lines.append(f"{path}" + (f"   (component: {', '.join(members)})" if len(members) > 2 else ""))
    return lines


def rank(module: str) -> int | None:
    """The module's daemon layer (None outside daemon or in no layer)."""
    name = module
    while name:
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def layer_name(module: str) -> str:
    name = module
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return name


# -- the rules on this tree ---------------------------------------------------------------------------------

GRAPH = import_graph()


def test_the_walker_sees_every_package() -> None:
    for pkg in PACKAGES:
        assert pkg in GRAPH, f"{pkg} not found under {REPO}"
    assert "daemon.core.db" in GRAPH["daemon.core.versions"], GRAPH["daemon.core.versions"]
    assert any(t.startswith("sandbox.") for targets in GRAPH.values() for t in targets)


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles (break each one; arrows run from api/cli to build/ops to core):\n  " + \
        "\n  ".join(found)


@pytest.mark.parametrize("leaf", ["sandbox", "sync"])
def test_leaf_packages_do_not_import_daemon(leaf: str) -> None:
    bad = [f"{m} imports {t}" for m, targets in sorted(GRAPH.items()) if m.split(".")[0] == leaf
           for t in sorted(targets) if t.split(".")[0] == "daemon"]
    assert not bad, f"{leaf} must not depend on daemon:\n  " + "\n  ".join(bad)


def test_every_daemon_module_has_a_layer() -> None:
    lost = [m for m in sorted(GRAPH) if m.split(".")[0] == "daemon" and rank(m) is None]
    assert not lost, f"modules in no layer (add them to the daemon-layers contract, pyproject.toml): {', '.join(lost)}"


def test_no_upward_arrows_between_daemon_layers() -> None:
    bad = []
    for module, targets in sorted(GRAPH.items()):
        mine = rank(module)
        if mine is None:
            continue
        for target in sorted(targets):
            theirs = rank(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{module} ({layer_name(module)}, rank {mine}) imports {target} "
                           f"({layer_name(target)}, rank {theirs})")
    assert not bad, "upward imports (a module may import only its own rank or lower):\n  " + "\n  ".join(bad)


def test_daemon_modules_are_short_or_say_why() -> None:
    long = []
    for module, path in sorted(discover(REPO, ("daemon",)).items()):
        n = len(path.read_text().splitlines())
        if n > MAX_LINES and LONG_REASON not in (ast.get_docstring(ast.parse(path.read_text())) or "").lower():
            long.append(f"{module}: {n} lines")
    assert not long, (f"modules over {MAX_LINES} lines whose docstring does not say why ({LONG_REASON!r}); "
                      "split them or give the reason:\n  " + "\n  ".join(long))


def test_sandbox_and_sync_modules_are_short_or_say_why() -> None:
    long = [f"{m}: {n} lines" for m, path in sorted(discover(REPO, ("sandbox", "sync")).items())
            if (n := len(path.read_text().splitlines())) > MAX_LINES
            and LONG_REASON not in (ast.get_docstring(ast.parse(path.read_text())) or "").lower()]
    assert not long, f"modules over {MAX_LINES} lines without {LONG_REASON!r} in their docstring:\n  " + \
        "\n  ".join(long)


# -- the walker itself ----------------------------------------------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_walker_counts_local_type_checking_and_relative_imports(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import b\n",
        "pkg/sub/__init__.py": "from .. import c\n",
        "pkg/sub/b.py": "def f():\n    from ..c import thing\n    import pkg.d.e\n",
        "pkg/c.py": "from pkg import a, missing\nimport os\n",
        "pkg/d/e.py": "from pkg.sub import VALUE\n",
    })
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": {"pkg.c"},
        "pkg.sub.b": {"pkg.c", "pkg.d.e"},
        "pkg.c": {"pkg.a", "pkg"},
        "pkg.d.e": {"pkg.sub"},
    }
    assert cycles(graph) == ["pkg.a -> pkg.sub.b -> pkg.c -> pkg.a   "
                             "(component: pkg.a, pkg.c, pkg.d.e, pkg.sub, pkg.sub.b)"]


def test_cycle_report_names_a_two_module_cycle() -> None:
    assert cycles({"x": {"y"}, "y": {"x", "z"}, "z": set()}) == ["x -> y -> x"]


def test_rank_and_layer_of_modules() -> None:
    assert rank("daemon") == rank("daemon.core.db") == 0
    assert rank("daemon.cli.serve") == 12 and layer_name("daemon.cli.serve") == "daemon.cli"
    assert rank("daemon.runtime") == 3 and rank("daemon.fleet.seam") == 2
    assert rank("sandbox.runner") is None


def test_the_layer_table_read_from_pyproject() -> None:
    assert LAYERS == {"daemon": 0, "daemon.core": 0, "daemon.history": 1, "daemon.generators": 1,
                      "daemon.deployers": 1, "daemon.render": 1, "daemon.fleet": 2, "daemon.runtime": 3,
                      "daemon.project": 4, "daemon.publish": 5, "daemon.steps": 6, "daemon.intake": 7,
                      "daemon.ops": 8, "daemon.services": 9, "daemon.api": 10, "daemon.ui": 10,
                      "daemon.wiring": 11, "daemon.cli": 12}


# -- seams hide their backend (issue 25) ----------------------------------------------------------------------

# The concrete backends: the module that defines each, and the class.
CONCRETE_BACKENDS = {
    "daemon.deployers.local": "LocalDeployer",
    "daemon.deployers.cloudflare.deployer": "CloudflareDeployer",
    "sync.kv.local": "LocalKV",
    "sync.cloudflare.kv": "CloudflareKV",
    "sync.objects.local": "LocalObjectStore",
    "sync.objects.s3": "S3ObjectStore",
    "sync.replica.postgres": "PostgresReplica",
    "sync.replica.usage": "PostgresUsage",
}
# The composition root picks the backends from the config and builds them; everything else receives them typed by
# their Protocol and asks their capabilities. daemon/wiring.py is the root; the edges themselves are still built by
# daemon/runtime.py (the holder of the edges, which the root constructs), and daemon/cli/serve.py runs what the root
# built.
COMPOSITION_ROOT = {"daemon.wiring", "daemon.runtime", "daemon.cli.serve"}
# Other importers allowed, each with its reason. A backend's own package (its `__init__` re-exports, its
# siblings) may import it too.
BACKEND_IMPORT_EXCEPTIONS = {
    "sync.registry": "the name -> backend table the composition root calls (make_kv, make_object_store, ...)",
    "sync.lease": "the fleet's lease rows are a Postgres feature with no other backend; it opens its own "
                  "PostgresReplica connection on the replica's database",
    "sync.handlers": "usage_handler takes the usage meter, which has one backend (PostgresUsage) and no Protocol",
}


def backend_imports(root: Path = REPO, packages: tuple[str, ...] = ("daemon", "sync")) -> list[tuple[str, str]]:
    """(importer, what) for every import of a concrete backend's module or class, anywhere in a module's body."""
    modules = discover(root, packages)
    classes = set(CONCRETE_BACKENDS.values())
    found = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                hits = [a.name for a in node.names if _owner(a.name, modules) in CONCRETE_BACKENDS]
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    base = module if is_package else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    source = f"{base}.{node.module}" if node.module else base
                hits = [f"{source}.{a.name}" for a in node.names
                        if a.name in classes or _owner(f"{source}.{a.name}", modules) in CONCRETE_BACKENDS]
            else:
                continue
            found.extend((module, hit) for hit in hits)
    return found


def _own_package(importer: str, what: str) -> bool:
    backend = next(m for m in CONCRETE_BACKENDS if what == m or what.startswith(m + ".")
                   or what.rpartition(".")[2] == CONCRETE_BACKENDS[m])
    package = backend.rpartition(".")[0]
    return importer == package or importer.startswith(package + ".")


def test_concrete_backends_are_imported_only_by_the_composition_root() -> None:
    bad = [f"{m} imports {what}" for m, what in sorted(backend_imports())
           if m not in COMPOSITION_ROOT and m not in BACKEND_IMPORT_EXCEPTIONS and not _own_package(m, what)]
    assert not bad, ("a concrete backend is built only by the composition root (daemon/wiring.py and the runtime "
                     "it builds); elsewhere take the Protocol and ask its capabilities:\n  "
                     + "\n  ".join(bad))


def test_the_backend_rule_sees_every_spelling(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "daemon/__init__.py": "",
        "daemon/deployers/__init__.py": "",
        "daemon/deployers/local.py": "class LocalDeployer: ...\n",
        "daemon/steps/__init__.py": "",
        "daemon/steps/a.py": "from daemon.deployers.local import LocalDeployer\n",
        "daemon/steps/b.py": "def f():\n    import daemon.deployers.local\n",
        "daemon/steps/c.py": "from ..deployers import local\n",
        "daemon/steps/d.py": "from sync.kv import LocalKV\n",
        "daemon/steps/e.py": "from daemon.deployers import base\n",
        "sync/__init__.py": "",
        "sync/kv/__init__.py": "",
    })
    assert sorted(backend_imports(tmp_path)) == [
        ("daemon.steps.a", "daemon.deployers.local.LocalDeployer"),
        ("daemon.steps.b", "daemon.deployers.local"),
        ("daemon.steps.c", "daemon.deployers.local"),
        ("daemon.steps.d", "sync.kv.LocalKV"),
    ]
    assert _own_package("daemon.deployers.sanitize", "daemon.deployers.local")
    assert not _own_package("daemon.steps.a", "daemon.deployers.local.LocalDeployer")


# -- jobs take their collaborators, not the runtime (issue 25) ------------------------------------------------

# The runtime holds every edge: a module that imports it can reach anything, so its signature says nothing about
# what it uses. Operations jobs are built by the composition root (daemon/wiring.py `build_ops_jobs`) with the
# collaborators they use; none of them imports the runtime, not even for a type.
LOCATOR = "daemon.runtime"
NO_LOCATOR = ("daemon.ops",)


def locator_imports(root: Path = REPO) -> list[str]:
    """'<module> imports daemon.runtime' for every module under NO_LOCATOR that imports it, in any form."""
    modules = discover(root, ("daemon",))
    return sorted(f"{m} imports {LOCATOR}" for m, path in modules.items()
                  if any(m == p or m.startswith(p + ".") for p in NO_LOCATOR)
                  and LOCATOR in imports_of(m, path, modules))


def test_ops_modules_do_not_import_the_runtime() -> None:
    bad = locator_imports()
    assert not bad, ("an operations job takes the collaborators it uses, built by the composition root "
                     "(daemon/wiring.py build_ops_jobs), never the runtime:\n  " + "\n  ".join(bad))


def test_the_runtime_rule_sees_every_spelling(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "daemon/__init__.py": "",
        "daemon/runtime.py": "class Runtime: ...\n",
        "daemon/core/__init__.py": "",
        "daemon/core/layout.py": "class Layout: ...\n",
        "daemon/ops/__init__.py": "",
        "daemon/ops/a.py": "from typing import TYPE_CHECKING\n"
                           "if TYPE_CHECKING:\n    from daemon.runtime import Runtime\n",
        "daemon/ops/b.py": "def f():\n    import daemon.runtime\n",
        "daemon/ops/c.py": "from .. import runtime\n",
        "daemon/ops/deep/__init__.py": "",
        "daemon/ops/deep/d.py": "from ...runtime import Runtime\n",
        "daemon/ops/clean.py": "from daemon.core.layout import Layout\n",
        "daemon/api/__init__.py": "",
        "daemon/api/e.py": "from daemon.runtime import Runtime\n",  # not under the rule
    })
    assert locator_imports(tmp_path) == [f"daemon.ops.{m} imports daemon.runtime" for m in ("a", "b", "c", "deep.d")]
