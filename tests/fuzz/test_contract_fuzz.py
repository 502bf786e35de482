"""Hypothesis against generator output: hostile contracts are rejected or accepted correctly, never written outside."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from daemon.core.contract import (
    FORBIDDEN_SEGMENTS,
    RESERVED_NAMES,
    Contract,
    ContractError,
    ContractLimits,
    apply_contract,
    parse_contract_text,
    validate_contract,
)
from daemon.project.workspace import materialize

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Small caps so "huge" and "many" are reachable in a few hundred examples; the real caps are tested at the end.
LIMITS = ContractLimits(max_files=12, max_file_bytes=600, max_total_bytes=2_000, max_path_len=240, max_depth=12)
META = {"name": "x", "slug": "x", "description": "", "version": "0.1.0", "author": "", "repository": "",
        "license": "MIT", "tech_stack": ["react"], "metadata": {}}

# -- strategies ------------------------------------------------------------------------------------------------------

HOSTILE_SEGMENTS = [
    "", ".", "..", "...", ".git", ".GIT", ".Git", "node_modules", "NODE_MODULES", ".pnpm-store", "pnpm-cache",
    ".npmrc", ".NPMRC", "pnpm-lock.yaml", "PNPM-WORKSPACE.yaml", ".pnpmfile.cjs", ".pnpmfile.mjs",
    "CON", "nul", "aux.txt", "COM1", "LPT1.js",  # Windows reserved names: harmless on Linux, must still be safe
    "a\x00b", "a\nb", "\r", "\t", "\x1b[31m", "\x7f",  # NUL and control characters
    "a\\b", "..\\..\\etc", "C:", "c:x", "\\\\server",  # backslashes and drives
    "x" * 255, "x" * 256, "é" * 127, "é" * 128, "\U0001f600" * 64,  # segment length in bytes
    "\u00e9", "e\u0301", "\u212a", "K", "k",  # NFC/NFD and Kelvin-sign look-alikes
    "\uff0e\uff0e", "\u2024\u2024", "\u2215etc", "\u202e", "\ufeff", "\u200b",  # dot/slash look-alikes, bidi
    "%2e%2e", "~", "$HOME", "-rf", " ", "a ", "\ud800", "\udfff",  # encodings, lone surrogates
]
SAFE_SEGMENTS = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\\",
                                               exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
PLAIN_SEGMENTS = st.sampled_from(["src", "a", "b", "App.tsx", "app.tsx", "index.html", "lib", "x.js", "README.md",
                                  "package.json", "public", "deep"])


@st.composite
def hostile_paths(draw: st.DrawFn) -> Any:
    """A path built from plain, arbitrary and hostile segments, with prefix and suffix tricks."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([None, 1, 1.5, True, [], {}, ["a"], {"path": "a"}]))
    segs = draw(st.lists(st.one_of(PLAIN_SEGMENTS, SAFE_SEGMENTS, st.sampled_from(HOSTILE_SEGMENTS)),
                         min_size=1, max_size=5))
    path = "/".join(segs)
    trick = draw(st.sampled_from(["", "", "", "/", "./", "//", "../", "trailing", "double", "long"]))
    if trick == "trailing":
        return path + "/"
    if trick == "double":
        return path.replace("/", "//", 1)
    if trick == "long":
        return "/".join(["d"] * 130)  # 259 characters of short segments
    return trick + path


@st.composite
def contents(draw: st.DrawFn) -> Any:
    """File content: small text, text with lone surrogates, near/over the caps, or not a string at all."""
    kind = draw(st.integers(0, 12))
    if kind == 0:
        return draw(st.sampled_from([None, 1, [], {}, b"bytes".decode() + "\ud800"]))
    if kind == 1:
        return "é" * draw(st.integers(LIMITS.max_file_bytes // 2 - 2, LIMITS.max_file_bytes // 2 + 2))
    if kind == 2:
        return "x" * draw(st.integers(LIMITS.max_file_bytes - 2, LIMITS.max_file_bytes + 2))
    return draw(st.text(max_size=40))


@st.composite
def entries(draw: st.DrawFn, paths: st.SearchStrategy[Any]) -> Any:
    """One files/templateFiles entry, sometimes with link, type or encoding tricks, sometimes not an object."""
    if draw(st.integers(0, 40)) == 0:
        return draw(st.sampled_from(["a.js", None, 3, ["a.js", "x"]]))
    entry: dict[str, Any] = {"path": draw(paths), "content": draw(contents())}
    extra = draw(st.integers(0, 14))
    if extra == 1:
        entry["type"] = draw(st.sampled_from(["symlink", "link", "hardlink", "dir", "file", None, ["file"]]))
    elif extra == 2:
        entry[draw(st.sampled_from(["link", "symlink", "target", "linkTarget"]))] = "/etc/passwd"
    elif extra == 3:
        entry["encoding"] = draw(st.sampled_from(["base64", "utf-8", "UTF8", "latin-1", 7]))
    elif extra == 4:
        del entry[draw(st.sampled_from(["path", "content"]))]
    return entry


def any_paths() -> st.SearchStrategy[Any]:
    """Mostly plain paths (so accepted contracts are common), often hostile ones."""
    plain = st.lists(PLAIN_SEGMENTS, min_size=1, max_size=3).map("/".join)
    return st.one_of(plain, plain, hostile_paths())


def nested(depth: int) -> Any:
    """A value nested ``depth`` levels deep, alternating objects and lists (built without recursion)."""
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


@st.composite
def clean_entries(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed entry: a plain path and short text (or a big one, so the total cap is reached)."""
    size = draw(st.sampled_from([20, 20, 20, 300]))
    return {"path": draw(st.lists(PLAIN_SEGMENTS, min_size=1, max_size=3).map("/".join)),
            "content": draw(st.text(max_size=size))}


@st.composite
def contracts(draw: st.DrawFn) -> dict[str, Any]:
    """A full contract or a delta: a third built from hostile parts, the rest clean with at most one trick.

    The clean majority keeps accepted contracts common, so the accept side of the oracle is exercised too.
    """
    hostile = draw(st.integers(0, 2)) == 0
    paths = any_paths() if hostile else st.lists(PLAIN_SEGMENTS, min_size=1, max_size=3).map("/".join)
    entry = entries(paths) if hostile else clean_entries()
    files = draw(st.lists(entry, max_size=LIMITS.max_files + (2 if hostile else 0),
                          unique_by=None if hostile else (lambda e: e["path"].casefold())))
    named = [e["path"] for e in files if isinstance(e, dict) and isinstance(e.get("path"), str)]
    trick = draw(st.integers(0, 5))
    if named and trick == 0:  # a sibling that collides: case variant, its folder, a child, the same path
        p = draw(st.sampled_from(named))
        variant = draw(st.sampled_from([p.upper(), p.swapcase(), p.rsplit("/", 1)[0], p + "/x", p]))
        files.insert(draw(st.integers(0, len(files))), {"path": variant, "content": "v"})
    elif files and trick == 1:  # one hostile entry among clean ones
        files[draw(st.integers(0, len(files) - 1))] = draw(entries(hostile_paths()))
    if draw(st.booleans()):
        template = draw(st.lists(entry, max_size=4))
        data: dict[str, Any] = {**META, "templateFiles": template, "files": files}
        if hostile and draw(st.integers(0, 8)) == 0:
            del data[draw(st.sampled_from(sorted(data)))]
    else:
        data = {"files": files}
        marker = draw(st.sampled_from([None, True, False, "yes", 1] if hostile else [None, True]))
        if marker is not None:
            data["delta"] = marker
        gone = paths if hostile else st.sampled_from([*named, "missing.js", "src"]) if named else PLAIN_SEGMENTS
        for key in draw(st.sets(st.sampled_from(["deleted", "deletedFiles"]))):
            data[key] = draw(st.lists(st.one_of(gone, gone.map(lambda p: {"path": p})), max_size=4))
    if "templateFiles" in data and draw(st.integers(0, 4)) == 0:  # deep JSON where a full contract allows any
        data["metadata"] = {"extra": nested(draw(st.integers(1, 2 * LIMITS.max_depth)))}
    if hostile and draw(st.integers(0, 10)) == 0:
        data[draw(st.sampled_from(["name", "tech_stack", "metadata", "templateFiles", "files"]))] = draw(
            st.sampled_from([None, 1, "x", [1], {"a": 1}]))
    return data


# -- the oracle: what a safe accepted contract looks like, decided independently of daemon.contract ----------------

def assert_safe_path(path: Any) -> None:
    """A path the workspace may hold: relative, plain segments, nothing the daemon owns, sane lengths."""
    assert isinstance(path, str) and path, path
    assert len(path) <= LIMITS.max_path_len, path
    path.encode("utf-8")  # no lone surrogates
    assert not path.startswith("/"), path
    assert "\\" not in path, path
    assert not any(unicodedata.category(c) == "Cc" for c in path), repr(path)
    assert not (len(path) >= 2 and path[1] == ":" and path[0].isascii() and path[0].isalpha()), path
    for seg in path.split("/"):
        assert seg not in ("", ".", ".."), path
        assert len(seg.encode("utf-8")) <= 255, path
        assert seg.casefold() not in FORBIDDEN_SEGMENTS, path
    assert path.split("/")[-1].casefold() not in RESERVED_NAMES, path


def assert_consistent_tree(files: dict[str, str]) -> None:
    """No two paths that collide on a case-insensitive disk, and no path that is both a file and a directory."""
    folded: dict[str, str] = {}
    for path in files:
        other = folded.setdefault(path.casefold(), path)
        assert other == path, f"{path!r} and {other!r} differ only in letter case"
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    clash = sorted(dirs & set(files))
    assert not clash, f"{clash} are both files and directories"


def check_contract(contract: Contract, limits: ContractLimits) -> None:
    """Every accepted contract satisfies the oracle and the caps."""
    for path in [*contract.files, *contract.deleted]:
        assert_safe_path(path)
    assert_consistent_tree(contract.files)
    assert len(contract.files) <= limits.max_files
    assert sum(len(c.encode("utf-8")) for c in contract.files.values()) <= limits.max_total_bytes
    assert all(len(c.encode("utf-8")) <= limits.max_file_bytes for c in contract.files.values())
    assert not set(contract.deleted) & set(contract.files)


# -- the workspace check -----------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Everything under ``root`` (files, dirs, links) by relative path, without following links."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes().hex()
    return out


def written_files(ws: Path) -> dict[str, str]:
    """The regular files under the workspace as text, failing on any symlink or special file."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(ws, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            assert not p.is_symlink(), f"symlink left in the workspace: {p} -> {os.readlink(p)}"
        for name in filenames:
            p = Path(dirpath, name)
            out[p.relative_to(ws).as_posix()] = p.read_bytes().decode("utf-8")
    return out


def write_and_check(base: dict[str, str], contract: Contract, traps: list[str]) -> None:
    """Materialize base, plant symlink traps pointing outside, apply the contract and check the result exactly."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outside = root / "outside"
        outside.mkdir()
        (outside / "victim.txt").write_text("keep me")
        ws = root / "ws"
        materialize(ws, base, keep=())
        for trap in traps:
            link = ws / trap
            if link.is_symlink() or not link.parent.is_dir() or link.parent.is_symlink():
                continue
            if link.is_dir():
                continue
            link.unlink(missing_ok=True)
            link.symlink_to(outside if trap.endswith("dir") else outside / "victim.txt")
        before = snapshot(outside)
        files = apply_contract(base, contract)
        materialize(ws, files, keep=())
        assert sorted(os.listdir(root)) == ["outside", "ws"]
        assert snapshot(outside) == before
        assert written_files(ws) == files


# -- properties --------------------------------------------------------------------------------------------------------

@FUZZ
@given(data=contracts(), allow_delta=st.booleans())
def test_validate_rejects_or_returns_a_safe_contract(data: dict[str, Any], allow_delta: bool) -> None:
    try:
        contract = validate_contract(data, allow_delta=allow_delta, limits=LIMITS)
    except ContractError as exc:
        assert str(exc)
        return
    check_contract(contract, LIMITS)
    assert contract.is_delta is False or allow_delta
    json.dumps(contract.to_json())  # the stored/served form is plain JSON


PLAIN_PATHS = st.lists(PLAIN_SEGMENTS, min_size=1, max_size=3).map("/".join)


@st.composite
def base_and_delta(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """A consistent base tree, a delta against it (deleting files, folders, missing paths; re-adding), and traps."""
    base_paths = draw(st.lists(PLAIN_PATHS, max_size=8, unique_by=str.casefold))
    base = {p: draw(st.text(max_size=20)) for p in base_paths}
    try:
        assert_consistent_tree(base)
    except AssertionError:
        assume(False)
    folders = sorted({p.rsplit("/", 1)[0] for p in base if "/" in p})
    pool = [*base, *folders, "missing.js", "src/missing", "deep/er/still"]
    deleted = draw(st.lists(st.sampled_from(pool), max_size=4))
    written = draw(st.lists(st.one_of(st.sampled_from(pool), PLAIN_PATHS), max_size=5))
    delta: dict[str, Any] = {"files": [{"path": p, "content": draw(st.text(max_size=20))} for p in written]}
    if deleted:
        delta["deleted"] = deleted
    if draw(st.booleans()):
        delta["delta"] = True
    traps = draw(st.lists(st.sampled_from([*pool, "src/dir", "dir", "a/dir", "b"]), max_size=3))
    return base, delta, traps


@FUZZ
@given(case=base_and_delta())
def test_delta_applies_exactly_and_writes_nothing_outside(
        case: tuple[dict[str, str], dict[str, Any], list[str]]) -> None:
    base, delta, traps = case
    try:
        contract = validate_contract(delta, allow_delta=True, limits=LIMITS)
        files = apply_contract(base, contract)
    except ContractError:
        return
    check_contract(contract, LIMITS)
    assert_consistent_tree(files)
    expected = {p: c for p, c in base.items()
                if not any(p == d or p.startswith(d + "/") for d in contract.deleted)}
    expected.update(contract.files)
    assert files == expected
    write_and_check(base, contract, traps)


@FUZZ
@given(data=contracts(), traps=st.lists(st.sampled_from(["src", "a", "b", "src/dir", "lib", "dir"]), max_size=3))
def test_accepted_full_contracts_write_exactly_their_files(data: dict[str, Any], traps: list[str]) -> None:
    try:
        contract = validate_contract(data, allow_delta=False, limits=LIMITS)
    except ContractError:
        return
    write_and_check({"old/file.txt": "old", "src": "a file where a folder may come"}, contract, traps)


@st.composite
def generator_texts(draw: st.DrawFn) -> tuple[str, Any]:
    """Generator stdout: a JSON value bare, fenced, wrapped in prose, truncated, or deeply nested."""
    value: Any = draw(st.one_of(contracts(), st.just(nested(draw(st.integers(1, 40)))),
                                st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                             lambda c: st.lists(c, max_size=3) | st.dictionaries(
                                                 st.text(max_size=4), c, max_size=3), max_leaves=10)))
    body = json.dumps(value, indent=draw(st.sampled_from([None, 2])), ensure_ascii=draw(st.booleans()))
    prose = st.text(max_size=30)
    shape = draw(st.integers(0, 6))
    if shape == 0:
        text = body
    elif shape == 1:
        text = f"{draw(prose)}\n```{draw(st.sampled_from(['json', 'JSON', '', 'js']))}\n{body}\n```\n{draw(prose)}"
    elif shape == 2:
        text = f"{draw(prose)} {body} {draw(prose)}"
    elif shape == 3:
        text = body[: draw(st.integers(0, len(body)))]
    elif shape == 4:
        text = "```json\n" + body  # an unclosed fence
    elif shape == 5:
        text = '"' + "\\\"" * draw(st.integers(0, 200)) + body  # an unterminated string before the object
    else:
        text = draw(st.text(max_size=200))
    return text, value


@FUZZ
@given(case=generator_texts())
def test_parse_contract_text_returns_json_or_raises_contract_error(case: tuple[str, Any]) -> None:
    text, value = case
    try:
        parsed = parse_contract_text(text, LIMITS)
    except ContractError as exc:
        assert str(exc)
        return
    json.dumps(parsed)
    if text.strip() == json.dumps(value).strip() and isinstance(value, dict):
        assert parsed == value
    with contextlib.suppress(ContractError):
        validate_contract(parsed, allow_delta=True, limits=LIMITS)


def test_parse_survives_a_long_unterminated_string() -> None:
    """2 MB of escaped quotes after an opening one: the depth scan must stay linear (it once took hours)."""
    text = '{"a": "' + '\\"' * 1_000_000
    try:
        parse_contract_text(text, ContractLimits())
    except ContractError as exc:
        assert "no JSON object" in str(exc)
    else:
        raise AssertionError("an unterminated string parsed")


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(count=st.integers(495, 505), size=st.sampled_from([999_999, 1_000_000, 1_000_001]))
def test_real_caps_many_and_huge_files(count: int, size: int) -> None:
    """The production caps: 500 files, 1,000,000 bytes a file, 20,000,000 in all."""
    limits = ContractLimits()
    small = [{"path": f"src/f{i}.js", "content": "x"} for i in range(count - 1)]
    data = {**META, "templateFiles": [], "files": [*small, {"path": "big.txt", "content": "y" * size}]}
    try:
        contract = validate_contract(data, allow_delta=False, limits=limits)
    except ContractError:
        assert count > limits.max_files or size > limits.max_file_bytes
        return
    assert count <= limits.max_files and size <= limits.max_file_bytes
    check_contract(contract, limits)
    too_much = {**META, "templateFiles": [], "files": [{"path": f"f{i}", "content": "z" * 999_999} for i in range(21)]}
    try:
        validate_contract(too_much, allow_delta=False, limits=limits)
    except ContractError as exc:
        assert "total" in str(exc)
    else:
        raise AssertionError("21 files of 999,999 bytes passed the 20,000,000-byte total cap")
