"""Pulling the contract JSON out of generator text: bare, fenced, wrapped in prose; depth and size capped."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from daemon.core.contract import ContractError, ContractLimits, parse_contract_text

LIMITS = ContractLimits()


def test_bare_json(full: Callable[..., dict[str, Any]]) -> None:
    data = full()
    assert parse_contract_text(json.dumps(data), LIMITS) == data


def test_fenced_block_with_prose(full: Callable[..., dict[str, Any]]) -> None:
    data = full()
    text = f"Here is the project {{as asked}}:\n\n```json\n{json.dumps(data, indent=2)}\n```\nGood luck {{!}}"
    assert parse_contract_text(text, LIMITS) == data


def test_fence_without_language_tag(full: Callable[..., dict[str, Any]]) -> None:
    data = full()
    assert parse_contract_text(f"```\n{json.dumps(data)}\n```", LIMITS) == data


def test_content_holding_code_fences_is_not_cut(full: Callable[..., dict[str, Any]]) -> None:
    """A README whose content has ``` fences stays inside its JSON string."""
    data = full(files=[{"path": "README.md", "content": "# x\n```json\n{\"a\": 1}\n```\n"}])
    text = "```json\n" + json.dumps(data, indent=2) + "\n```"
    assert parse_contract_text(text, LIMITS) == data


def test_outermost_object_in_prose(full: Callable[..., dict[str, Any]]) -> None:
    data = full()
    text = "I built it. " + json.dumps(data) + " Let me know if you want changes {like this}."
    assert parse_contract_text(text, LIMITS) == data


def test_array_is_returned_for_validation_to_reject() -> None:
    assert parse_contract_text("[1, 2]", LIMITS) == [1, 2]


@pytest.mark.parametrize("text", ["", "no json here", "{not: json}", '{"a": 1', "```json\n{oops}\n```"])
def test_no_json_object(text: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_contract_text(text, LIMITS)
    assert info.value.code == "invalid_output"


def test_depth_cap_counts_brackets_outside_strings_only() -> None:
    """Brackets inside strings do not count toward the nesting depth."""
    limits = ContractLimits(max_depth=3)
    shallow = json.dumps({"a": {"b": "[[[[{{{{ not nesting ]]]] \\\" {{"}})
    assert parse_contract_text(shallow, limits) == json.loads(shallow)
    with pytest.raises(ContractError, match="nested deeper than 3"):
        parse_contract_text(json.dumps({"a": {"b": {"c": {}}}}), limits)


def test_python_recursion_limit_never_reached() -> None:
    """Nesting far past Python's recursion limit is a clean ContractError, not a RecursionError."""
    text = "[" * 200_000 + "]" * 200_000
    with pytest.raises(ContractError, match="nested deeper"):
        parse_contract_text(text, LIMITS)
