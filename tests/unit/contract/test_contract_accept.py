"""What the contract accepts and how it normalises: merge rule, delta recognition, apply, round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from daemon.core.contract import Contract, ContractError, apply_contract, validate_contract

Full = Callable[..., dict[str, Any]]


def test_full_contract_merges_template_files_and_files(full: Full) -> None:
    c = validate_contract(full(), allow_delta=False)
    assert not c.is_delta
    assert c.files == {"package.json": '{"name": "demo"}', "src/main.ts": "console.log(1)\n"}
    assert c.deleted == ()
    assert c.meta["name"] == "demo" and c.meta["tech_stack"] == ["react"]
    assert set(c.meta) == {"name", "slug", "description", "version", "author", "repository", "license",
                           "tech_stack", "metadata"}


def test_files_override_template_files_on_the_same_path(full: Full) -> None:
    data = full(files=[{"path": "package.json", "content": "{\"name\": \"mine\"}"}])
    assert validate_contract(data, allow_delta=False).files == {"package.json": "{\"name\": \"mine\"}"}


def test_unknown_top_level_keys_and_metadata_keys_are_kept_or_ignored(full: Full) -> None:
    data = full(metadata={"tags": ["x"], "custom": {"deep": 1}}, extra_notes="ignored")
    c = validate_contract(data, allow_delta=False)
    assert c.meta["metadata"] == {"tags": ["x"], "custom": {"deep": 1}}
    assert "extra_notes" not in c.meta


def test_file_entry_type_file_and_utf8_encoding_are_accepted(full: Full) -> None:
    data = full(files=[{"path": "a.txt", "content": "é", "type": "file", "encoding": "UTF-8"}])
    assert validate_contract(data, allow_delta=False).files["a.txt"] == "é"


@pytest.mark.parametrize("path", ["src/components/Hero.tsx", ".gitignore", ".github/workflows/ci.yml",
                                  "public/robots.txt", "a b/c.ts", "src/über.ts", ".env.example"])
def test_ordinary_paths_are_accepted(full: Full, path: str) -> None:
    assert path in validate_contract(full(files=[{"path": path, "content": ""}]), allow_delta=False).files


@pytest.mark.parametrize("data", [
    {"files": [{"path": "src/a.ts", "content": "1"}]},
    {"files": [], "deletedFiles": ["src/old.ts"]},
    {"delta": True, "name": "renamed", "files": [{"path": "src/a.ts", "content": "1"}]},
])
def test_delta_is_recognised(data: dict[str, Any]) -> None:
    assert validate_contract(data, allow_delta=True).is_delta


def test_full_contract_is_accepted_on_a_rebuild(full: Full) -> None:
    assert not validate_contract(full(), allow_delta=True).is_delta


def test_delta_false_marker_means_full(full: Full) -> None:
    with pytest.raises(ContractError) as info:
        validate_contract({"delta": False, "files": []}, allow_delta=True)
    assert info.value.field == "name"
    assert not validate_contract({**full(), "delta": False}, allow_delta=True).is_delta


def test_deleted_aliases_merge_and_accept_path_objects() -> None:
    c = validate_contract({"files": [], "deleted": ["a.ts", {"path": "b.ts"}], "deletedFiles": ["a.ts", "c"]},
                          allow_delta=True)
    assert c.deleted == ("a.ts", "b.ts", "c")


def test_apply_full_replaces_base(full: Full) -> None:
    c = validate_contract(full(), allow_delta=True)
    assert apply_contract({"old.ts": "x"}, c) == c.files


def test_apply_delta_patches_base() -> None:
    base = {"keep.ts": "k", "src/a.ts": "old", "src/gone.ts": "g", "assets/x/1.txt": "1", "assets/x/2.txt": "2",
            "assets/xy.txt": "xy"}
    c = validate_contract({"files": [{"path": "src/a.ts", "content": "new"}, {"path": "src/b.ts", "content": "b"}],
                           "deleted": ["src/gone.ts", "assets/x", "missing.ts"]}, allow_delta=True)
    assert apply_contract(base, c) == {"keep.ts": "k", "src/a.ts": "new", "src/b.ts": "b", "assets/xy.txt": "xy"}
    assert base["src/a.ts"] == "old"  # the base mapping is not mutated


def test_to_json_round_trips(full: Full) -> None:
    c = validate_contract(full(), allow_delta=False)
    assert validate_contract(c.to_json(), allow_delta=False) == c
    d = validate_contract({"files": [{"path": "a", "content": "1"}], "deleted": ["b"]}, allow_delta=True)
    assert validate_contract(d.to_json(), allow_delta=True) == d


def test_contract_error_names_field_and_message() -> None:
    err = ContractError("is absolute", "files[0].path")
    assert (err.code, err.field, err.message) == ("invalid_output", "files[0].path", "is absolute")
    assert str(err) == "files[0].path: is absolute"
    assert isinstance(Contract(files={}), Contract)



def test_package_json_pnpm_settings_pass_the_contract(full: Full) -> None:
    """The pipeline strips a generated package.json's `pnpm` settings; the contract does not fail the build."""
    pkg = json.dumps({"name": "x", "pnpm": {"onlyBuiltDependencies": ["esbuild"]}})
    assert validate_contract(full(files=[{"path": "package.json", "content": pkg}]), allow_delta=False)
