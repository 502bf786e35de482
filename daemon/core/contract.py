"""The generator output contract (seed section 2): parse, validate and apply it, writing nothing.

Rules, decided here once:

* **Full contract** (new project, or a rebuild that rewrites everything): every top-level seed field is
  required with its type: ``name, slug, description, version, author, repository, license`` (strings),
  ``tech_stack`` (list of strings), ``metadata`` (object), ``templateFiles`` and ``files`` (lists of
  ``{path, content}``). Known ``metadata`` keys are type-checked when present (``tags``, ``industry_tags``,
  ``style_tags``, ``components``: lists; ``core_pages``, ``design_tokens``: objects; ``rsc_path``: string).
  Unknown top-level keys are ignored.
* **Delta** (rebuild only, ``allow_delta=True``): recognised when ``"delta": true`` is present, or when the
  object carries none of the full contract's own fields (``name``, ``slug``, ..., ``templateFiles``), i.e.
  just ``files`` plus optional ``deleted`` / ``deletedFiles``. A document holding some full-contract fields
  but not all, without ``"delta": true``, is a broken full contract and is rejected naming the first missing
  field. A delta may carry meta fields; they are type-checked and kept in ``meta``.
* **Duplicates**: ``templateFiles`` and ``files`` are merged; a path present in both takes the content from
  ``files`` (the project overrides its scaffold). The same path twice inside one list, or two paths that
  differ only in letter case anywhere, are rejected (ambiguous; they collide on case-insensitive disks), as is
  a path that is a file and also the folder of another (``a`` and ``a/b``). :func:`apply_contract` applies the
  same two rules to a delta's written paths against the base it patches.
* **Deleted paths** (``deleted`` or ``deletedFiles``, merged; strings or ``{path}`` objects) obey the same
  path rules; a path both written and deleted is rejected. Deleting a directory removes everything under it;
  deleting a path the base lacks is a no-op.
* **Paths**: relative POSIX paths of at most ``max_path_len`` characters (255 bytes a segment); rejected
  when absolute, with a drive prefix, a backslash, a NUL or control character, an empty/``.``/``..``
  segment, or a segment that is ``.git``, ``node_modules`` or a pnpm store (``.pnpm-store``,
  ``pnpm-cache``), compared case-insensitively.
* **Reserved files** (any depth, case-insensitive): ``.npmrc``, ``pnpm-workspace.yaml``, ``.pnpmfile.cjs``,
  ``.pnpmfile.mjs`` and ``pnpm-lock.yaml``. The daemon owns install policy (registry, store, which
  dependency build scripts may run) and resolves the lockfile itself, so generated output may not set them.
  One exception: ``pnpm-workspace.yaml`` at the root declares a workspace; the build keeps only its
  ``packages`` globs and refuses settings that would undo the policy (``daemon/project/monorepo.py``).
* **Entries** are objects with string ``path`` and ``content`` (UTF-8 text); an optional ``type`` must be
  ``"file"``; entries that are links (``type`` link/symlink, or any ``link``/``symlink``/``target`` key)
  are rejected, as is any ``encoding`` other than utf-8.
* **Limits** (:class:`ContractLimits`): file count, bytes per file, total bytes, path length, JSON depth.

Long because every rule of the contract (paths, sizes, depth, collisions, deltas) sits in one place, so what
is accepted can be read top to bottom.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

META_STRING_FIELDS = ("name", "slug", "description", "version", "author", "repository", "license")
FULL_FIELDS = (*META_STRING_FIELDS, "tech_stack", "metadata", "templateFiles", "files")
# Fields that only a full contract carries: their presence means "this was meant as a full contract".
_FULL_ONLY = (*META_STRING_FIELDS, "tech_stack", "metadata", "templateFiles")
_METADATA_TYPES: dict[str, type] = {
    "tags": list,
    "industry_tags": list,
    "style_tags": list,
    "core_pages": dict,
    "components": list,
    "design_tokens": dict,
    "rsc_path": str,
}
FORBIDDEN_SEGMENTS = frozenset({".git", "node_modules", ".pnpm-store", "pnpm-cache"})
RESERVED_NAMES = frozenset({".npmrc", "pnpm-workspace.yaml", ".pnpmfile.cjs", ".pnpmfile.mjs", "pnpm-lock.yaml"})
# The one reserved name a contract may write, at the root only: a workspace's package globs. The build keeps just
# those and writes the daemon's install policy beside them (daemon/project/monorepo.py).
WORKSPACE_FILE = "pnpm-workspace.yaml"
_NAME_MAX = 255  # bytes per path segment on Linux filesystems
_LINK_KEYS = ("link", "symlink", "target", "linkTarget", "symlinkTarget")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# C1 controls, zero-width and bidirectional-override characters: a path that reads as one name and is another.
_INVISIBLE = re.compile("[\x80-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _fold(path: str) -> str:
    """The key two paths collide on: same letters in any case or Unicode normal form (as on macOS or NTFS)."""
    return unicodedata.normalize("NFC", path).casefold()
_FENCE_LINE = re.compile(r"^```[ \t]*(\w*)[ \t]*\r?$", re.M)
# The closing quote is optional: an unterminated string then runs to the end in one linear match, where a
# required quote made every later quote retry the scan to the end (quadratic: 64 KB of \" took 27 s).
_DEPTH_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)


class ContractError(Exception):
    """Generator output broke the contract; the version fails with ``invalid_output`` and nothing is written."""

    code = "invalid_output"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ContractLimits:
    """Caps applied to generator output before anything touches the disk."""

    max_files: int = 500
    max_file_bytes: int = 1_000_000
    max_total_bytes: int = 20_000_000
    max_path_len: int = 240
    max_depth: int = 64  # JSON nesting

    @property
    def max_text_chars(self) -> int:
        """Largest raw generator output accepted: total content plus room for JSON escaping and meta."""
        return 2 * self.max_total_bytes + 1_000_000


@dataclass(frozen=True)
class Contract:
    """A validated generator output: merged files, deleted paths (delta only) and the project meta."""

    files: dict[str, str]
    deleted: tuple[str, ...] = ()
    is_delta: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The contract in the seed's shape (meta fields, ``templateFiles: []``, ``files``; delta markers)."""
        out: dict[str, Any] = dict(self.meta)
        files = [{"path": p, "content": c} for p, c in sorted(self.files.items())]
        if self.is_delta:
            out.update(delta=True, files=files, deleted=list(self.deleted))
        else:
            out.update(templateFiles=[], files=files)
        return out


def parse_contract_text(text: str, limits: ContractLimits) -> Any:
    """JSON from generator text: the whole text, else a fenced ```json block, else the outermost object."""
    if not isinstance(text, str):
        raise ContractError("generator output is not text")
    if len(text) > limits.max_text_chars:
        raise ContractError(f"generator output is {len(text)} characters, over the {limits.max_text_chars} cap")
    stripped = text.strip()
    if not stripped:
        raise ContractError("generator output is empty")
    candidates: list[str] = [stripped]
    candidates += _fenced_blocks(text)
    start = text.find("{")
    if start >= 0:
        candidates.append(text[start:])
    for cand in candidates:
        found, value = _try_json(cand, limits, tolerate_tail=cand is not stripped)
        if found:
            return value
    raise ContractError("generator output holds no JSON object")


def _fenced_blocks(text: str) -> list[str]:
    """Bodies of ```json (or bare ```) fenced blocks, fence lines matched at line start."""
    marks = list(_FENCE_LINE.finditer(text))
    return [
        text[opening.end() : closing.start()]
        for opening, closing in itertools.pairwise(marks)
        if opening.group(1).lower() in ("", "json")
    ]


def _try_json(text: str, limits: ContractLimits, *, tolerate_tail: bool) -> tuple[bool, Any]:
    """Decode ``text`` (or its leading JSON value when ``tolerate_tail``); depth is checked first."""
    text = text.strip()
    if not text or text[0] not in "{[":
        return False, None
    _check_text_depth(text, limits.max_depth)
    try:
        if tolerate_tail:
            value, _end = json.JSONDecoder().raw_decode(text)
            return True, value
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def _check_text_depth(text: str, max_depth: int) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` without building it (strings are skipped whole)."""
    depth = 0
    for m in _DEPTH_TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > max_depth:
                raise ContractError(f"JSON is nested deeper than {max_depth} levels")
        elif tok in "]}":
            depth -= 1
            if depth <= 0:
                return  # the first value is complete; anything after is prose


def validate_contract(data: Any, *, allow_delta: bool, limits: ContractLimits | None = None) -> Contract:
    """Check decoded output against the contract (module docstring) and return it normalised; pure."""
    limits = limits or ContractLimits()
    if not isinstance(data, dict):
        raise ContractError(f"the contract must be a JSON object, got {_kind(data)}")
    _check_value_depth(data, limits.max_depth)
    is_delta = _is_delta(data)
    if is_delta and not allow_delta:
        missing = next((f for f in FULL_FIELDS if f not in data), "delta")
        raise ContractError("a new project needs the full contract; a delta is accepted only for a rebuild", missing)
    meta = _check_meta(data, full=not is_delta)
    lists = ("files",) if is_delta else ("templateFiles", "files")
    for name in lists:
        if name not in data:
            raise ContractError("missing (a list of {path, content})", name)
    entries = {name: data[name] for name in lists}
    for name, value in entries.items():
        if not isinstance(value, list):
            raise ContractError(f"must be a list of {{path, content}}, got {_kind(value)}", name)
    count = sum(len(v) for v in entries.values())
    if count > limits.max_files:
        raise ContractError(f"{count} file entries, over the cap of {limits.max_files}", "files")
    files: dict[str, str] = {}
    total = 0
    folded: dict[str, str] = {}
    for name, value in entries.items():
        seen: set[str] = set()
        for i, entry in enumerate(value):
            where = f"{name}[{i}]"
            path, content, size = _check_entry(entry, where, limits)
            if path in seen:
                raise ContractError(f"duplicate path {path!r} in {name}", f"{where}.path")
            seen.add(path)
            other = folded.get(_fold(path))
            if other is not None and other != path:
                raise ContractError(f"{path!r} and {other!r} differ only in letter case", f"{where}.path")
            folded[_fold(path)] = path
            if path in files:
                total -= len(files[path].encode("utf-8"))
            total += size
            if total > limits.max_total_bytes:
                raise ContractError(f"files total over the cap of {limits.max_total_bytes} bytes", where)
            files[path] = content
    _check_tree(files, files)
    deleted = _check_deleted(data, files, limits) if is_delta else ()
    if not is_delta and not files:
        raise ContractError("a full contract must contain at least one file", "files")
    if is_delta and not files and not deleted:
        raise ContractError("the delta changes nothing", "files")
    return Contract(files=files, deleted=deleted, is_delta=is_delta, meta=meta)


def _is_delta(data: dict[str, Any]) -> bool:
    """A delta says so (``"delta": true``) or carries no full-contract field at all."""
    marker = data.get("delta")
    if marker is not None and not isinstance(marker, bool):
        raise ContractError(f"must be a boolean, got {_kind(marker)}", "delta")
    if marker is not None:
        return marker
    return not any(f in data for f in _FULL_ONLY)


def _check_meta(data: dict[str, Any], *, full: bool) -> dict[str, Any]:
    """Type-check the meta fields (required for a full contract) and return them."""
    meta: dict[str, Any] = {}
    for name in META_STRING_FIELDS:
        if name not in data:
            if full:
                raise ContractError("missing (a string)", name)
            continue
        if not isinstance(data[name], str):
            raise ContractError(f"must be a string, got {_kind(data[name])}", name)
        meta[name] = data[name]
    if "tech_stack" in data:
        stack = data["tech_stack"]
        if not isinstance(stack, list):
            raise ContractError(f"must be a list of strings, got {_kind(stack)}", "tech_stack")
        for i, item in enumerate(stack):
            if not isinstance(item, str):
                raise ContractError(f"must be a string, got {_kind(item)}", f"tech_stack[{i}]")
        meta["tech_stack"] = list(stack)
    elif full:
        raise ContractError("missing (a list of strings)", "tech_stack")
    if "metadata" in data:
        md = data["metadata"]
        if not isinstance(md, dict):
            raise ContractError(f"must be an object, got {_kind(md)}", "metadata")
        for key, typ in _METADATA_TYPES.items():
            if key in md and not isinstance(md[key], typ):
                raise ContractError(f"must be {_kind_name(typ)}, got {_kind(md[key])}", f"metadata.{key}")
        meta["metadata"] = md
    elif full:
        raise ContractError("missing (an object)", "metadata")
    return meta


def _check_entry(entry: Any, where: str, limits: ContractLimits) -> tuple[str, str, int]:
    """One ``{path, content}`` entry: returns the path, the content and its UTF-8 size."""
    if not isinstance(entry, dict):
        raise ContractError(f"must be an object {{path, content}}, got {_kind(entry)}", where)
    kind = entry.get("type", "file")
    if kind in ("link", "symlink", "hardlink") or any(k in entry for k in _LINK_KEYS):
        raise ContractError("links are not allowed; give the file's content instead", where)
    if kind != "file":
        raise ContractError(f"type must be 'file', got {kind!r}", f"{where}.type")
    encoding = entry.get("encoding", "utf-8")
    if not isinstance(encoding, str) or encoding.lower().replace("-", "") != "utf8":
        raise ContractError("only utf-8 text content is accepted", f"{where}.encoding")
    if "path" not in entry:
        raise ContractError("missing (a string)", f"{where}.path")
    path = check_path(entry["path"], limits, f"{where}.path")
    content = entry.get("content")
    if "content" not in entry:
        raise ContractError("missing (a string)", f"{where}.content")
    if not isinstance(content, str):
        raise ContractError(f"must be a string, got {_kind(content)}", f"{where}.content")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        raise ContractError("is not valid Unicode text (lone surrogate)", f"{where}.content") from None
    if size > limits.max_file_bytes:
        raise ContractError(f"{path!r} is {size} bytes, over the cap of {limits.max_file_bytes}", f"{where}.content")
    return path, content, size


def check_path(path: Any, limits: ContractLimits, where: str = "path") -> str:
    """Return ``path`` when it is a safe relative path inside a project (module docstring), else raise."""
    if not isinstance(path, str):
        raise ContractError(f"must be a string, got {_kind(path)}", where)
    if not path:
        raise ContractError("is empty", where)
    if len(path) > limits.max_path_len:
        raise ContractError(f"is {len(path)} characters, over the cap of {limits.max_path_len}", where)
    if _CONTROL.search(path):
        raise ContractError("contains a NUL or control character", where)
    if _INVISIBLE.search(path):
        raise ContractError("contains an invisible or bidirectional control character", where)
    if "\\" in path:
        raise ContractError(f"{path!r} contains a backslash; use '/'", where)
    if path.startswith("/") or _DRIVE.match(path):
        raise ContractError(f"{path!r} is absolute; paths are relative to the project", where)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ContractError("is not valid Unicode text", where) from None
    segments = path.split("/")
    for seg in segments:
        if seg in ("", "."):
            raise ContractError(f"{path!r} has an empty or '.' segment", where)
        if seg == "..":
            raise ContractError(f"{path!r} contains '..'", where)
        if len(seg.encode("utf-8", "surrogatepass")) > _NAME_MAX:
            raise ContractError(f"a segment of {path!r} is longer than {_NAME_MAX} bytes", where)
        if seg.casefold() in FORBIDDEN_SEGMENTS:
            raise ContractError(f"{path!r} points into {seg}, which the daemon owns", where)
    if segments[-1].casefold() in RESERVED_NAMES and path != WORKSPACE_FILE:
        raise ContractError(f"{path!r} is reserved: the daemon controls install policy and the lockfile", where)
    return path


def _check_deleted(data: dict[str, Any], files: Mapping[str, str], limits: ContractLimits) -> tuple[str, ...]:
    """The delta's deleted paths (``deleted`` and ``deletedFiles`` merged), validated and de-duplicated."""
    out: list[str] = []
    for name in ("deleted", "deletedFiles"):
        if name not in data:
            continue
        value = data[name]
        if not isinstance(value, list):
            raise ContractError(f"must be a list of paths, got {_kind(value)}", name)
        if len(value) > limits.max_files:
            raise ContractError(f"{len(value)} entries, over the cap of {limits.max_files}", name)
        for i, item in enumerate(value):
            where = f"{name}[{i}]"
            raw = item.get("path") if isinstance(item, dict) else item
            path = check_path(raw, limits, where)
            if path in files:
                raise ContractError(f"{path!r} is both written and deleted", where)
            if path not in out:
                out.append(path)
    return tuple(out)


def _check_value_depth(data: Any, max_depth: int) -> None:
    """Refuse decoded data nested deeper than ``max_depth`` (iterative, so deep input cannot recurse)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise ContractError(f"JSON is nested deeper than {max_depth} levels")
        children: Iterator[Any]
        if isinstance(value, dict):
            children = iter(value.values())
        elif isinstance(value, list):
            children = iter(value)
        else:
            continue
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def apply_contract(base: Mapping[str, str], contract: Contract) -> dict[str, str]:
    """The project's files after ``contract``: a full contract replaces ``base``; a delta patches it."""
    if not contract.is_delta:
        return dict(contract.files)
    out = dict(base)
    for gone in contract.deleted:
        out.pop(gone, None)
        prefix = gone + "/"
        for path in [p for p in out if p.startswith(prefix)]:
            del out[path]
    out.update(contract.files)
    _check_tree(out, contract.files)
    return out


def _parents(path: str) -> Iterator[str]:
    """The folders above ``path``: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _check_tree(tree: Mapping[str, str], written: Iterable[str]) -> None:
    """Refuse a tree where a written path is both a file and a folder, or differs from another only in letter case.

    Either way the tree cannot be written (or not on a case-insensitive disk); only collisions involving a
    written path count, so a base that already holds one does not block every later delta.
    """
    files: dict[str, list[str]] = {}
    dirs: dict[str, str] = {}
    for path in tree:
        files.setdefault(_fold(path), []).append(path)
        for parent in _parents(path):
            dirs.setdefault(_fold(parent), parent)
    for path in written:
        others = [p for p in files[_fold(path)] if p != path]
        if others:
            raise ContractError(f"{path!r} and {others[0]!r} differ only in letter case or Unicode form", "files")
        if _fold(path) in dirs:
            raise ContractError(f"{path!r} is written as a file, but {dirs[_fold(path)]!r} is a folder of other "
                                "files", "files")
        for parent in _parents(path):
            if _fold(parent) in files:
                raise ContractError(f"{path!r} needs {parent!r} to be a folder, but it is a file", "files")


def _kind(value: Any) -> str:
    """JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    return _kind_name(type(value))


def _kind_name(typ: type) -> str:
    """JSON name for a Python type."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(typ, typ.__name__)
