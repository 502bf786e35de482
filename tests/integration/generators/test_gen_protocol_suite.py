"""One suite for the Generator Protocol, run against every backend (template, command, claude via its fake)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from daemon.core.contract import apply_contract, validate_contract
from daemon.generators import BACKENDS, GenerationRequest, Generator, make_generator

COMMAND = """
import json, sys
req = json.load(sys.stdin)
if req["files"] is None:
    out = {"name": "c", "slug": "c", "description": req["prompt"], "version": "0.1.0", "author": "", "repository": "",
           "license": "MIT", "tech_stack": [], "metadata": {}, "templateFiles": [],
           "files": [{"path": "index.html", "content": "<h1>" + req["prompt"] + "</h1>"}]}
else:
    out = {"delta": True, "files": [{"path": "index.html", "content": "<h1>" + req["prompt"] + "</h1>"}]}
print(json.dumps(out))
"""


@pytest.fixture(params=BACKENDS)
def generator(request: pytest.FixtureRequest, script: Callable[[str], str], fake_claude: str) -> Generator:
    """Each backend, wired to something real that answers it."""
    if request.param == "command":
        return make_generator("command", command=[script(COMMAND)])
    if request.param == "claude":
        env = {**os.environ, "FAKE_CLAUDE_MODE": "success"}
        return make_generator("claude", claude_executable=fake_claude, env=env)
    return make_generator(request.param)


def test_name_is_the_backend(generator: Generator, request: pytest.FixtureRequest) -> None:
    assert generator.name == request.node.callspec.params["generator"]


def test_new_project_is_a_full_valid_contract(generator: Generator, log: list[str]) -> None:
    result = generator.generate(GenerationRequest("a page about otters"), log.append)
    contract = result.contract
    assert not contract.is_delta and contract.files and contract.deleted == ()
    assert isinstance(contract.meta["name"], str)
    assert validate_contract(contract.to_json(), allow_delta=False) == contract
    assert result.raw is None or json.dumps(result.raw)  # raw, when given, is storable JSON
    assert log


def test_rebuild_changes_the_project(generator: Generator, log: list[str]) -> None:
    first = generator.generate(GenerationRequest("a page about otters"), log.append).contract
    base = apply_contract({}, first)
    second = generator.generate(GenerationRequest("add a pricing section", base_files=base), log.append).contract
    after = apply_contract(base, second)
    assert after and after != base
    if second.is_delta:  # a delta touches only what it lists
        changed = {p for p in after if after[p] != base.get(p)} | (set(base) - set(after))
        assert changed <= set(second.files) | set(second.deleted)
