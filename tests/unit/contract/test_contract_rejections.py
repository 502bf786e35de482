"""Every rule of the output contract rejects with invalid_output, names the field and writes nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from daemon.core.contract import ContractError, ContractLimits, apply_contract, parse_contract_text, validate_contract
from daemon.project.workspace import materialize
from tests.unit.contract.conftest import VALID_FULL

FULL = VALID_FULL  # the one valid contract the contract tests share


def full_contract(**changes: Any) -> dict[str, Any]:
    """A valid full contract with top-level keys replaced (a value of ... removes the key)."""
    data = copy.deepcopy(FULL)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def with_file(path: Any = "src/x.ts", content: Any = "x", **extra: Any) -> dict[str, Any]:
    """A full contract whose ``files`` holds one extra entry."""
    entry: dict[str, Any] = {"path": path, "content": content, **extra}
    return full_contract(files=[*FULL["files"], entry])


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mtime, to compare before and after."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }

SMALL = ContractLimits(max_files=3, max_file_bytes=10, max_total_bytes=25, max_path_len=20, max_depth=8)


def _deep(levels: int) -> dict[str, Any]:
    """A full contract whose metadata nests ``levels`` objects deep."""
    inner: dict[str, Any] = {}
    node = inner
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return full_contract(metadata={"design_tokens": inner})


def _small_files(n: int, size: int) -> dict[str, Any]:
    return full_contract(templateFiles=[], files=[{"path": f"f{i}.txt", "content": "x" * size} for i in range(n)])


# (id, output text or JSON data, allow_delta, limits, expected field)
CASES: list[tuple[str, Any, bool, ContractLimits | None, str | None]] = [
    ("non_json", "Sure! Here is your app: it has a pricing page.", False, None, None),
    ("broken_json", '{"name": "x", "files": [', False, None, None),
    ("empty_output", "   \n", False, None, None),
    ("not_an_object", [FULL], False, None, None),
    ("string_not_object", "just text in quotes", False, None, None),
    *[(f"missing_{f}", full_contract(**{f: ...}), False, None, f) for f in (
        "name", "slug", "description", "version", "author", "repository", "license", "tech_stack", "metadata",
        "templateFiles", "files")],
    ("mistyped_name", full_contract(name=42), False, None, "name"),
    ("mistyped_license", full_contract(license=None), False, None, "license"),
    ("mistyped_tech_stack", full_contract(tech_stack="react"), False, None, "tech_stack"),
    ("mistyped_tech_stack_item", full_contract(tech_stack=["react", 3]), False, None, "tech_stack[1]"),
    ("mistyped_metadata", full_contract(metadata=[]), False, None, "metadata"),
    ("mistyped_metadata_tags", full_contract(metadata={"tags": "a,b"}), False, None, "metadata.tags"),
    ("mistyped_metadata_core_pages", full_contract(metadata={"core_pages": []}), False, None, "metadata.core_pages"),
    ("mistyped_templateFiles", full_contract(templateFiles={"package.json": "{}"}), False, None, "templateFiles"),
    ("mistyped_files", full_contract(files="src/main.ts"), False, None, "files"),
    ("mistyped_delta_marker", {"delta": "yes", "files": []}, True, None, "delta"),
    ("delta_for_new_project", {"files": [{"path": "a.ts", "content": ""}]}, False, None, "name"),
    ("explicit_delta_for_new_project", {**FULL, "delta": True}, False, None, "delta"),
    ("delta_without_files", {"delta": True, "deleted": ["a.ts"]}, True, None, "files"),
    ("delta_deleted_not_list", {"files": [], "deleted": "a.ts"}, True, None, "deleted"),
    ("delta_deleted_bad_path", {"files": [], "deletedFiles": ["../etc/passwd"]}, True, None, "deletedFiles[0]"),
    ("delta_written_and_deleted", {"files": [{"path": "a.ts", "content": ""}], "deleted": ["a.ts"]}, True, None,
     "deleted[0]"),
    ("delta_changes_nothing", {"delta": True, "files": []}, True, None, "files"),
    ("partial_full_contract_on_rebuild", {"name": "x", "files": [{"path": "a", "content": ""}]}, True, None, "slug"),
    ("full_contract_without_files", full_contract(templateFiles=[], files=[]), False, None, "files"),
    ("entry_not_object", full_contract(files=["src/main.ts"]), False, None, "files[0]"),
    ("entry_missing_path", full_contract(files=[{"content": "x"}]), False, None, "files[0].path"),
    ("entry_missing_content", full_contract(files=[{"path": "a.ts"}]), False, None, "files[0].content"),
    ("entry_path_not_string", with_file(path=["a"]), False, None, "files[1].path"),
    ("entry_content_not_string", with_file(content={"x": 1}), False, None, "files[1].content"),
    ("entry_content_null", with_file(content=None), False, None, "files[1].content"),
    ("entry_type_directory", with_file(type="directory"), False, None, "files[1].type"),
    ("entry_base64", with_file(encoding="base64"), False, None, "files[1].encoding"),
    ("entry_lone_surrogate", with_file(content="bad \ud800 text"), False, None, "files[1].content"),
    ("path_absolute", with_file(path="/etc/passwd"), False, None, "files[1].path"),
    ("path_drive", with_file(path="C:/x.ts"), False, None, "files[1].path"),
    ("path_dotdot", with_file(path="src/../../x.ts"), False, None, "files[1].path"),
    ("path_leading_dotdot", with_file(path="../x.ts"), False, None, "files[1].path"),
    ("path_backslash", with_file(path="src\\x.ts"), False, None, "files[1].path"),
    ("path_nul", with_file(path="src/x\x00.ts"), False, None, "files[1].path"),
    ("path_control_char", with_file(path="src/x\n.ts"), False, None, "files[1].path"),
    ("path_empty", with_file(path=""), False, None, "files[1].path"),
    ("path_empty_segment", with_file(path="src//x.ts"), False, None, "files[1].path"),
    ("path_trailing_slash", with_file(path="src/"), False, None, "files[1].path"),
    ("path_dot_segment", with_file(path="./x.ts"), False, None, "files[1].path"),
    ("path_too_long", with_file(path="a" * 241), False, None, "files[1].path"),
    ("path_into_git", with_file(path=".git/hooks/post-checkout"), False, None, "files[1].path"),
    ("path_into_git_uppercase", with_file(path=".GIT/config"), False, None, "files[1].path"),
    ("path_into_node_modules", with_file(path="node_modules/react/index.js"), False, None, "files[1].path"),
    ("path_into_nested_node_modules", with_file(path="pkg/node_modules/x.js"), False, None, "files[1].path"),
    ("path_into_pnpm_store", with_file(path=".pnpm-store/v3/x"), False, None, "files[1].path"),
    ("reserved_npmrc", with_file(path=".npmrc", content="registry=http://evil/"), False, None, "files[1].path"),
    ("reserved_nested_npmrc", with_file(path="app/.npmrc"), False, None, "files[1].path"),
    ("reserved_nested_workspace_yaml", with_file(path="apps/pnpm-workspace.yaml"), False, None, "files[1].path"),
    ("reserved_workspace_yaml_case", with_file(path="PNPM-Workspace.yaml"), False, None, "files[1].path"),
    ("reserved_pnpmfile", with_file(path=".pnpmfile.cjs"), False, None, "files[1].path"),
    ("reserved_lockfile", with_file(path="pnpm-lock.yaml"), False, None, "files[1].path"),
    ("path_segment_over_255_bytes", with_file(path="src/" + "é" * 130), False, None, "files[1].path"),
    ("link_type_symlink", with_file(type="symlink", target="/etc/passwd"), False, None, "files[1]"),
    ("link_key", with_file(link="/etc/shadow"), False, None, "files[1]"),
    ("link_target_only", with_file(target="../../secret"), False, None, "files[1]"),
    ("link_in_template_files", full_contract(templateFiles=[{"path": "a", "content": "", "type": "link"}]), False,
     None, "templateFiles[0]"),
    ("duplicate_path_in_one_list", full_contract(files=[{"path": "a.ts", "content": "1"},
                                                        {"path": "a.ts", "content": "2"}]), False, None,
     "files[1].path"),
    ("duplicate_path_differing_in_case", full_contract(files=[{"path": "src/App.tsx", "content": "1"},
                                                              {"path": "src/app.tsx", "content": "2"}]), False, None,
     "files[1].path"),
    ("case_duplicate_across_lists", full_contract(files=[{"path": "Package.json", "content": "{}"}]), False, None,
     "files[0].path"),
    ("too_many_files", _small_files(4, 1), False, SMALL, "files"),
    ("too_many_deleted", {"files": [], "deleted": ["a", "b", "c", "d"]}, True, SMALL, "deleted"),
    ("file_over_size_cap", _small_files(1, 11), False, SMALL, "files[0].content"),
    ("total_over_cap", _small_files(3, 9), False, SMALL, "files[2]"),
    ("nested_too_deep", _deep(10), False, SMALL, None),
    ("nested_far_too_deep_text", "{" + '"a":[' * 5000 + "]" * 5000 + "}", False, None, None),
]


@pytest.mark.parametrize(("output", "allow_delta", "limits", "field"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rejected_output_writes_nothing(
    workspace: Path, output: Any, allow_delta: bool, limits: ContractLimits | None, field: str | None
) -> None:
    """Parse -> validate -> apply -> materialize stops at the contract check; the workspace is untouched."""
    limits = limits or ContractLimits()
    text = output if isinstance(output, str) else json.dumps(output)
    before = snapshot(workspace)
    with pytest.raises(ContractError) as info:
        data = parse_contract_text(text, limits)
        contract = validate_contract(data, allow_delta=allow_delta, limits=limits)
        materialize(workspace, apply_contract({}, contract))
    err = info.value
    assert err.code == "invalid_output"
    assert err.field == field, err
    assert err.message
    assert snapshot(workspace) == before


def test_every_rule_has_a_case() -> None:
    """The case table covers each rule family named in the issue."""
    ids = " ".join(c[0] for c in CASES)
    for rule in ("non_json", "missing_", "mistyped_", "absolute", "dotdot", "git", "node_modules", "link",
                 "too_many", "over_size", "total", "case", "deep", "reserved", "backslash", "nul", "pnpm_store"):
        assert rule in ids, rule


def test_output_too_large_is_refused_before_decoding() -> None:
    """A flood of output is refused by size, not decoded."""
    limits = ContractLimits(max_total_bytes=10)
    with pytest.raises(ContractError, match="over the"):
        parse_contract_text("{" + " " * (limits.max_text_chars + 1) + "}", limits)


@pytest.mark.parametrize("path", ["src/\u202eevil.ts", "src/a\u200bb.ts", "src/\ufeffx.ts", "src/\x85x.ts"])
def test_invisible_and_bidi_characters_in_paths_are_rejected(path: str) -> None:
    from daemon.core.contract import ContractLimits, check_path

    with pytest.raises(ContractError, match="invisible or bidirectional"):
        check_path(path, ContractLimits())


def test_paths_equal_after_unicode_normalisation_collide() -> None:
    from daemon.core.contract import validate_contract

    delta = {"delta": True, "files": [{"path": "caf\u00e9.ts", "content": "a"},
                                      {"path": "cafe\u0301.ts", "content": "b"}]}
    with pytest.raises(ContractError):
        validate_contract(delta, allow_delta=True)
