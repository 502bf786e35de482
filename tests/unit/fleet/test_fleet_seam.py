"""The fleet seam (daemon/fleet/seam.py): no caller asks whether the fleet is on. Outside daemon/fleet and the
runtime (which picks the implementation), nothing compares `fleet` with None, tests its truth, asks its class, or
imports an implementation; and both implementations carry every member of the Protocol."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from daemon.fleet.leased import LeasedFleet
from daemon.fleet.seam import Fleet
from daemon.fleet.single import SingleDroplet

REPO = Path(__file__).resolve().parents[3]
ALLOWED = ("daemon/fleet/", "daemon/runtime.py")
IMPLEMENTATIONS = {"daemon.fleet.single", "daemon.fleet.leased", "SingleDroplet", "LeasedFleet"}


def _is_fleet(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "fleet") or (
        isinstance(node, ast.Name) and node.id == "fleet")


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def fleet_questions(source: str, filename: str = "<source>") -> list[str]:
    """Each place in `source` that asks whether the fleet is on or which fleet it is: `fleet is (not) None`,
    `fleet == None`, `fleet` as a condition, `isinstance(fleet, ...)`, an import of an implementation."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(map(_is_fleet, operands)) and any(map(_is_none, operands)):
                found.append(f"{filename}:{line}: fleet compared with None")
        tests: list[ast.AST] = []
        if isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert)):
            tests = [node.test]
        elif isinstance(node, ast.BoolOp):
            tests = list(node.values)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tests = [node.operand]
        if any(map(_is_fleet, tests)):
            found.append(f"{filename}:{line}: fleet used as a condition")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                and node.args and _is_fleet(node.args[0])):
            found.append(f"{filename}:{line}: the fleet's class asked")
        if isinstance(node, ast.ImportFrom):
            names = {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names} | {a.name for a in node.names}
            if names & IMPLEMENTATIONS:
                found.append(f"{filename}:{line}: a fleet implementation imported")
        elif isinstance(node, ast.Import) and {a.name for a in node.names} & IMPLEMENTATIONS:
            found.append(f"{filename}:{line}: a fleet implementation imported")
    return found


@pytest.mark.parametrize("planted", [
    "if rt.fleet is None:\n    pass\n",
    "ok = self.rt.fleet is not None and self.rt.fleet.draining\n",
    "x = runtime.fleet == None\n",
    "r = make() if rt.fleet else None\n",
    "if not fleet:\n    pass\n",
    "alone = isinstance(rt.fleet, object)\n",
    "from daemon.fleet.single import SingleDroplet\n",
    "from daemon.fleet import leased\n",
    "import daemon.fleet.leased\n",
])
def test_the_check_finds_a_planted_question(planted: str) -> None:
    assert fleet_questions(planted) != []


def test_the_check_passes_calls_on_the_seam() -> None:
    clean = ("rt.fleet.admit(u, p)\nif rt.fleet.draining:\n    pass\n"
             "r = make() if rt.fleet.previews_from_any_droplet else None\nfrom daemon.fleet import verify\n")
    assert fleet_questions(clean) == []


def test_no_module_outside_the_fleet_and_the_runtime_asks_whether_the_fleet_is_on() -> None:
    found = []
    for path in sorted((REPO / "daemon").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if not rel.startswith(ALLOWED):
            found += fleet_questions(path.read_text(), rel)
    assert found == []


@pytest.mark.parametrize("impl", [SingleDroplet, LeasedFleet])
def test_each_implementation_carries_every_member_of_the_protocol(impl: type) -> None:
    members = {n for n in vars(Fleet) if not n.startswith("_")}
    assert members, "the Protocol declares its members"
    for name in members:
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        declared = vars(Fleet)[name]
        if inspect.isfunction(declared):
            want = list(inspect.signature(declared).parameters)
            assert list(inspect.signature(getattr(impl, name)).parameters) == want, (impl.__name__, name)
