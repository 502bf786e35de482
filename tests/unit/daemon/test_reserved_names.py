"""Names no user can take (issue 24, attack 2): one table (sync.names) refused by the id validator and every store,
and a walk of the code for every place a user id becomes a path or a key."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from daemon.core import ids
from daemon.core.errors import BadRequest
from daemon.core.layout import Layout
from daemon.project.isolation import UnsafeLayout
from sync import names
from sync.errors import InvalidKey
from sync.kv.base import pointer_key
from sync.objects.base import validate_object_key
from sync.objects.local import LocalObjectStore

REPO = Path(__file__).resolve().parents[3]
VID = "01J0AAAAAAAAAAAAAAAAAAAAAA"

# Every reserved name, spelled as an attacker would try it, plus the prefixes the rule keeps for the daemon.
BAD = sorted({*names.RESERVED_NAMES, *(n.upper() for n in names.RESERVED_NAMES), "_archive", "_tmp", "_x", ".x",
              "-x", "..", ".", "_", "Tmp", "LOGS"})


def test_table_holds_what_the_daemon_uses() -> None:
    assert {"_archive", "_tmp"} <= names.RESERVED_NAMES
    assert {"projects", "objects", "previews", "logs", "tmp", "cache", "pnpm-store"} <= names.RESERVED_NAMES
    assert set(Layout.__dict__["create"].__globals__["SUBDIRS"]) <= names.RESERVED_NAMES
    from sync.objects import local

    assert local.RESERVED <= names.RESERVED_NAMES  # the store's folders come from the table


@pytest.mark.parametrize("name", BAD)
def test_validator_refuses_every_reserved_name(name: str) -> None:
    assert not ids.valid_id(name)
    for field in ("userId", "projectId"):
        args = (name, "p1") if field == "userId" else ("u1", name)
        with pytest.raises(BadRequest) as exc:
            ids.check_project_ids(*args)
        assert exc.value.extra.get("field") == field
    with pytest.raises(BadRequest):
        ids.check_org_id(name)


def test_ordinary_ids_still_pass() -> None:
    for good in ("a", "A-b_9", "x" * 64, "carol", "u1", "tmpx", "archive", "user_1", "9lives", "a-", "a_"):
        assert ids.valid_id(good), good


def test_schema_pattern_is_the_same_rule() -> None:
    import re

    pattern = re.compile(names.ID_PATTERN)
    for name in [*BAD, "carol", "tmpx", "x" * 64, "x" * 65, "a b"]:
        assert bool(pattern.fullmatch(name)) == names.valid_id(name), name


# -- every builder of a path or key from a user id ------------------------------------------------------------

def _builders(tmp: Path) -> list[tuple[str, object]]:
    """(name, callable(user_id)) for every place in the daemon and its stores a user id becomes a path or a key."""
    from daemon.core import quotas
    from daemon.project import isolation

    layout = Layout.of(tmp / "data")
    store = LocalObjectStore(tmp / "data" / "objects")
    out: list[tuple[str, object]] = []
    for attr, raw in vars(Layout).items():
        fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
        if attr.startswith("_") or not inspect.isfunction(fn):
            continue
        params = list(inspect.signature(fn).parameters)
        if "user_id" in params:
            bound = getattr(layout, attr)
            extra = {"project_id": "p1", "version_id": VID, "base": None, "top": VID, "size": "s"}
            out.append((f"Layout.{attr}", lambda u, b=bound, e=extra, ps=params: b(
                **{k: (u if k == "user_id" else e[k]) for k in ps if k not in ("self",)})))
            out.append((f"Layout.{attr}[project]", lambda u, b=bound, e=extra, ps=params: b(
                **{k: ("u1" if k == "user_id" else u if k == "project_id" else e[k]) for k in ps if k != "self"})))
    out.append(("Layout.local_object", lambda u: layout.local_object(f"{u}/p1/snapshots/{VID}.zip")))
    out.append(("isolation.project_dirs", lambda u: isolation.project_dirs(tmp / "data", u, "p1")))
    out.append(("isolation.project_dirs[project]", lambda u: isolation.project_dirs(tmp / "data", "u1", u)))
    out.append(("quotas.refresh_storage", lambda u: quotas.refresh_storage(layout.objects, u)))
    for op in ("exists", "delete", "url", "open_bytes"):
        out.append((f"LocalObjectStore.{op}", lambda u, op=op: getattr(store, op)(f"{u}/p1/snapshots/{VID}.zip")))
    out.append(("LocalObjectStore.put_file", lambda u: store.put_file(f"{u}/p1/x", tmp / "f")))
    out.append(("validate_object_key", lambda u: validate_object_key(f"{u}/p1/x")))
    out.append(("kv.pointer_key", lambda u: pointer_key(u, "p1")))
    out.append(("kv.pointer_key[project]", lambda u: pointer_key("u1", u)))
    return out


def test_every_builder_refuses_every_reserved_name(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"24 MB in the attack")
    builders = _builders(tmp_path)
    assert len(builders) >= 16
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for label, build in builders:
        for name in BAD:
            if "/" in name:
                continue
            with pytest.raises((ValueError, InvalidKey, UnsafeLayout)):
                build(name)  # type: ignore[operator]
            assert label  # the label names the builder in a failure's traceback
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # nothing reached the disk


def test_s3_store_refuses_reserved_owner() -> None:
    from sync.objects.s3 import S3ObjectStore

    store = S3ObjectStore.__new__(S3ObjectStore)
    store.prefix = ""
    with pytest.raises(InvalidKey):
        store._full(f"_archive/carol/snapshots/{VID}.zip")


# -- the walk: no other code turns a user id into a path or a key ---------------------------------------------

ID_NAMES = {"user_id", "project_id", "userId", "projectId"}
# (module, function): builders that check the id against sync.names themselves (tested above).
ALLOWED = {("daemon/project/isolation.py", "project_dirs"), ("daemon/core/quotas.py", "refresh_storage")}


def _idname(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ID_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in ID_NAMES
    return isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in ID_NAMES


def _key_fstring(node: ast.JoinedStr) -> bool:
    """`{user}/{project}/...` (an object key) or `projects/{user}...` (a data dir path); messages and URLs pass."""
    vals = node.values
    first = vals[0]
    if isinstance(first, ast.Constant) and str(first.value).startswith(("projects/", "objects/", "previews/")):
        return any(isinstance(v, ast.FormattedValue) and _idname(v.value) for v in vals)
    for i in range(len(vals) - 3):
        a, slash, b, rest = vals[i:i + 4]
        if (isinstance(a, ast.FormattedValue) and _idname(a.value) and isinstance(slash, ast.Constant)
                and slash.value == "/" and isinstance(b, ast.FormattedValue) and _idname(b.value)
                and isinstance(rest, ast.Constant) and str(rest.value).startswith("/")):
            before = vals[i - 1] if i else None
            return not (isinstance(before, ast.Constant) and str(before.value).startswith("/"))  # a URL route
    return False


def places_ids_become_paths(root: Path) -> list[str]:
    """`file:line function` of every expression outside Layout that joins a user or project id into a path or
    key: `dir / user_id`, `["projects", user_id, ...]` segments, `f"{user_id}/{project_id}/..."`."""
    found: list[str] = []
    for path in sorted(p for pkg in ("daemon", "sync", "sandbox") for p in (root / pkg).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ("daemon/core/layout.py", "sync/names.py"):
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                hit = (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                       and (_idname(node.right) or _idname(node.left)))
                hit = hit or (isinstance(node, ast.JoinedStr) and _key_fstring(node))
                hit = hit or (isinstance(node, (ast.List, ast.Tuple)) and any(_idname(e) for e in node.elts)
                              and any(isinstance(e, ast.Constant) and e.value in ("projects", "objects", "previews")
                                      for e in node.elts))
                if hit and (rel, func.name) not in ALLOWED:
                    found.append(f"{rel}:{getattr(node, 'lineno', '?')} {func.name}: {ast.unparse(node)[:80]}")
    return sorted(set(found))


def test_no_path_or_key_is_built_from_an_id_outside_the_checked_builders() -> None:
    found = places_ids_become_paths(REPO)
    assert not found, "build these through Layout (it checks sync.names):\n" + "\n".join(found)


def test_the_walk_finds_what_it_looks_for(tmp_path: Path) -> None:
    (tmp_path / "daemon").mkdir()
    (tmp_path / "daemon" / "bad.py").write_text(
        "def a(root, user_id):\n    return root / user_id\n"
        "def b(v):\n    return f\"{v.user_id}/{v.project_id}/snapshots/x.zip\"\n"
        "def c(d, user_id, project_id):\n    return ensure(d, ['projects', user_id, project_id])\n"
        "def ok(user_id, project_id):\n    return f'project {user_id}/{project_id} not found'\n")
    found = places_ids_become_paths(tmp_path)
    assert [f.split(" ")[1] for f in found] == ["a:", "b:", "c:"]
    for checked in ALLOWED:  # the allowed builders really check the id first
        src = (REPO / checked[0]).read_text()
        tree = ast.parse(src)
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == checked[1])
        assert "valid_id" in ast.unparse(fn) or "check_id" in ast.unparse(fn), checked
