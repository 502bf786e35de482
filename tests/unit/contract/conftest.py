"""Fixtures for the contract tests: a valid full contract to vary, and a workspace that already holds files."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

VALID_FULL: dict[str, Any] = {
    "name": "demo",
    "slug": "demo",
    "description": "a demo",
    "version": "0.1.0",
    "author": "TemplateSeed",
    "repository": "",
    "license": "MIT",
    "tech_stack": ["react"],
    "metadata": {"tags": [], "industry_tags": [], "style_tags": [], "core_pages": {}, "components": [],
                 "design_tokens": {}, "rsc_path": ""},
    "templateFiles": [{"path": "package.json", "content": '{"name": "demo"}'}],
    "files": [{"path": "src/main.ts", "content": "console.log(1)\n"}],
}


@pytest.fixture
def full() -> Callable[..., dict[str, Any]]:
    """Builder of a valid full contract with top-level keys replaced (``...`` removes a key)."""

    def build(**changes: Any) -> dict[str, Any]:
        data = copy.deepcopy(VALID_FULL)
        for key, value in changes.items():
            if value is ...:
                data.pop(key, None)
            else:
                data[key] = value
        return data

    return build


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A project directory with a previous version's files in it."""
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "README.md").write_text("old\n")
    (ws / "src" / "old.ts").write_text("export {}\n")
    return ws
