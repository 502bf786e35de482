"""One door out of a step's view (issue 23): no daemon code opens a path below a project's workspace but through
`sandbox.export` / `sandbox.safepath` (fd-based, no link followed at any depth).

The walk is a small taint analysis over the AST of every module in `daemon/`: a value is a workspace path when it
comes from a name `workspace`/`work`, an attribute `.work` (ProjectDirs), `project_dir(...)`, or from another
workspace path (`/`, calls on it, assignment, loops). Reading it with a path-taking call (open, Path.open,
read_bytes, read_text, rglob, glob, iterdir, os.walk/fwalk/scandir/listdir, shutil.copy*, zipfile.write), handing
it to a function whose parameter reaches such a call (found to a fixpoint, across modules), or to a deployer
(`DeployRequest(out_dir=...)`) fails the test, unless the call is listed in ALLOWED with why it is safe.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATH_READS = {"open", "read_bytes", "read_text", "rglob", "glob", "iterdir", "walk", "fwalk", "scandir", "listdir",
              "copy", "copy2", "copyfile", "copytree", "file_bytes", "disk_usage", "collect"}
ZIP_WRITES = {"write"}  # only on a receiver named like a zip file
TAINT_NAMES = {"workspace", "work"}
TAINT_ATTRS = {"work"}
TAINT_CALLS = {"project_dir"}
PATH_MAKERS = {"Path", "PurePath", "check_dir", "ensure_dir", "sorted", "list", "reversed"}
# (module, function, callee): why this use of a workspace path is not a read through a path.
BETWEEN_STEPS = "runs between steps, when no generated process lives (the install, build and checks have not " \
    "started), and reads names or sizes only"
ALLOWED: dict[tuple[str, str, str], str] = {
    ("daemon.history.repo", "snapshot", "collect"):
        "a directory snapshot for tests and tools; builds commit their file set (repo.snapshot_files) instead",
    ("daemon.steps.write", "write_workspace", "materialize"): "writes the workspace before any step runs",
    ("daemon.steps.export", "export", "find_output"):
        "names only (is the candidate a non-empty dir?); the copy is staging.stage's, which refuses links",
    ("daemon.project.frameworks", "find_output", "iterdir"): "the same names-only look at the candidates",
    ("daemon.steps.bundle", "bundle", "plan"): "checks.plan: " + BETWEEN_STEPS,
    ("daemon.steps.install", "give_code_parts", "give_to_code"): "ownership: " + BETWEEN_STEPS,
    ("daemon.steps.install", "reclaim_node_modules", "plan"): "scripts.plan: " + BETWEEN_STEPS,
    ("daemon.steps.install", "reclaim_node_modules", "reclaim"): "ownership: " + BETWEEN_STEPS,
    ("daemon.steps.install", "_after_pnpm", "plan"): "scripts.plan: " + BETWEEN_STEPS,
    ("daemon.steps.install", "_after_pnpm", "disk_usage"): "sizes by lstat: " + BETWEEN_STEPS,
    ("daemon.steps.streaming", "_flush", "write_file"):
        "writes (never reads) a streamed file by fd, O_NOFOLLOW at every level, while only pnpm (no project code) "
        "runs; held back while the install walks the workspace or its install-time scripts run (the walks lock)",
    ("daemon.steps.streaming", "_start_install", "write_file"):
        "writes package.json and the daemon's own files by fd before the install starts; nothing generated runs",
    ("daemon.steps.scripts", "plan", "_dependency_dirs"): "dependency dir names: " + BETWEEN_STEPS,
    ("daemon.steps.scripts", "_dependency_dirs", "listdir"): "dependency dir names: " + BETWEEN_STEPS,
    ("daemon.steps.reclaim", "_top_level", "listdir"):
        "names only, to remove them through safepath.remove_tree (never follows a link) after a failed build",
    ("daemon.steps.reclaim", "free_after_failure", "_top_level"): "the same names-only listing",
    ("daemon.project.netconfig", "purge", "open"):
        "the workspace's own dir fd, O_NOFOLLOW; below it the purge walks by fd (openat, O_NOFOLLOW, lstat "
        "by scandir) and only removes: " + BETWEEN_STEPS,
    ("daemon.project.netconfig", "before_install", "purge"): "the same fd walk",
    ("daemon.steps.install", "install", "before_install"): "the same fd walk",
}


@dataclass(frozen=True)
class Hit:
    module: str
    function: str
    callee: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} in {self.function}(): {self.callee}(<workspace path>)"


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((REPO / "daemon").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), ast.parse(path.read_text(), str(path))


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


class _Function:
    """Workspace paths inside one function, found by flowing taint through assignments until nothing changes."""

    def __init__(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, tainted_params: set[str],
                 builtin: bool = True) -> None:
        self.fn = fn
        self.builtin = builtin  # False: only the given parameters are workspace paths (finding sinks)
        self.names = set(tainted_params)
        changed = True
        while changed:
            changed = False
            for node in ast.walk(fn):
                targets: list[ast.expr] = []
                value: ast.expr | None = None
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
                    targets, value = [node.target], node.value
                elif isinstance(node, ast.For | ast.comprehension):
                    targets, value = [node.target], node.iter
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    targets, value = [node.optional_vars], node.context_expr
                elif isinstance(node, ast.NamedExpr):
                    targets, value = [node.target], node.value
                if value is None or not self.tainted(value):
                    continue
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name) and n.id not in self.names:
                            self.names.add(n.id)
                            changed = True

    def tainted(self, expr: ast.AST | None) -> bool:
        """Whether `expr` is a workspace path: a tainted name, `.work`, a path built from one (`/`, attributes and
        methods of it, Path()/check_dir/ensure_dir of it); a plain function's result is not a path of it."""
        if expr is None:
            return False
        if isinstance(expr, ast.Name):
            return expr.id in self.names or (self.builtin and expr.id in TAINT_NAMES)
        if isinstance(expr, ast.Attribute):
            return (self.builtin and expr.attr in TAINT_ATTRS) or self.tainted(expr.value)
        if isinstance(expr, ast.BinOp):
            return self.tainted(expr.left) or self.tainted(expr.right)
        if isinstance(expr, ast.Call):
            name = _callee(expr)
            if self.builtin and name in TAINT_CALLS:
                return True
            if name in PATH_MAKERS:
                return any(self.tainted(a) for a in expr.args)
            return isinstance(expr.func, ast.Attribute) and self.tainted(expr.func.value)
        if isinstance(expr, ast.Subscript | ast.Starred | ast.Await):
            return self.tainted(expr.value)
        if isinstance(expr, ast.Tuple | ast.List | ast.Set):
            return any(self.tainted(e) for e in expr.elts)
        if isinstance(expr, ast.IfExp):
            return self.tainted(expr.body) or self.tainted(expr.orelse)
        if isinstance(expr, ast.GeneratorExp | ast.ListComp | ast.SetComp):
            return self.tainted(expr.elt)
        return False

    def reads(self, sinks: dict[str, set[int]]) -> Iterator[tuple[ast.Call, str]]:
        """(call, callee) for each call that reads a workspace path by path."""
        for node in ast.walk(self.fn):
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            args: list[ast.expr] = list(node.args)
            if name in PATH_READS:
                hit = (receiver is not None and self.tainted(receiver) and not _is_module(receiver)) or \
                    any(self.tainted(a) for a in args)
            elif name in ZIP_WRITES:
                hit = receiver is not None and "z" in ast.unparse(receiver).lower() and bool(args) \
                    and self.tainted(args[0])
            elif name == "DeployRequest":
                hit = any(k.arg == "out_dir" and self.tainted(k.value) for k in node.keywords)
            else:
                hit = name in sinks and any(self.tainted(args[i]) for i in sinks[name] if i < len(args))
            if hit:
                yield node, name


def _is_module(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Name) and expr.id in {"os", "shutil", "zipfile", "tarfile", "io", "Path"}


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in (*fn.args.posonlyargs, *fn.args.args) if a.arg not in ("self", "cls")]


@functools.cache
def find_reads() -> tuple[Hit, ...]:
    """Every read of a workspace path by path in daemon/, sinks through helper functions found to a fixpoint."""
    modules = list(_modules())
    sinks: dict[str, set[int]] = {}
    changed = True
    while changed:  # a function whose parameter reaches a read is itself a read of that argument
        changed = False
        for _mod, tree in modules:
            for fn in _functions(tree):
                params = _params(fn)
                for i, p in enumerate(params):
                    if i in sinks.get(fn.name, set()) or p in ("rt", "v", "cfg"):
                        continue
                    probe = _Function(fn, {p}, builtin=False)
                    if any(True for _ in probe.reads(sinks)):
                        sinks.setdefault(fn.name, set()).add(i)
                        changed = True
    hits = []
    for mod, tree in modules:
        for fn in _functions(tree):
            for call, name in _Function(fn, set()).reads(sinks):
                hits.append(Hit(mod, fn.name, name, call.lineno))
    return tuple(hits)


def test_no_daemon_code_reads_a_workspace_path_but_through_the_door() -> None:
    hits = [h for h in find_reads() if (h.module, h.function, h.callee) not in ALLOWED]
    assert not hits, "workspace paths read by path (use sandbox.export / sandbox.safepath):\n" + \
        "\n".join(map(str, hits))


def test_every_allowed_read_still_exists() -> None:
    found = {(h.module, h.function, h.callee) for h in find_reads()}
    assert set(ALLOWED) <= found, f"stale ALLOWED entries: {set(ALLOWED) - found}"


def test_the_walk_sees_the_reads_it_must_refuse() -> None:
    """The analysis is not blind: the shapes the old code used are found."""
    src = '''
def zip_output(out_dir, dest):
    for path in sorted(out_dir.rglob("*")):
        zf.write(path, "x")

def a(workspace, out_rel):
    out_dir = workspace / out_rel
    zip_output(out_dir, "z")

def b(dirs):
    DeployRequest(out_dir=dirs.work / "dist")

def c(workspace):
    return (workspace / "dist" / "x").read_bytes()
'''
    tree = ast.parse(src)
    sinks = {"zip_output": {0}}
    names = {fn.name: [n for _c, n in _Function(fn, set()).reads(sinks)] for fn in _functions(tree)}
    assert names == {"zip_output": [], "a": ["zip_output"], "b": ["DeployRequest"], "c": ["read_bytes"]}
