"""The template generator's repair (README "Repair"): what it fixes deterministically, and that it says when it
cannot; through `generate`, so its answer is validated like any contract."""

from __future__ import annotations

import pytest

from daemon.generators import GenerationError, GenerationRequest, TemplateGenerator
from daemon.generators import template_app as app


def _repair(files: dict[str, str], errors: list[dict[str, object]], tail: list[str] | None = None) -> dict[str, str]:
    req = GenerationRequest(prompt="a bakery", base_files=files,
                            repair={"reason": "build_failed", "errors": errors, "logTail": tail or []})
    result = TemplateGenerator().generate(req, lambda _line: None)
    assert result.contract.is_delta
    return dict(result.contract.files)


def test_a_missing_import_is_removed() -> None:
    main = "import { Hero } from './Hero'\nimport { Gone } from './gone'\nexport const x = 1\n"
    fixed = _repair({"src/Widget.tsx": main, "src/other.ts": "export const y = 2\n"},
                    [{"file": "src/Widget.tsx", "line": 2, "message": "error TS2307: Cannot find module './gone' or "
                                                                    "its corresponding type declarations."}])
    assert fixed == {"src/Widget.tsx": "import { Hero } from './Hero'\nexport const x = 1\n"}


def test_a_vite_resolve_error_in_the_log_is_enough() -> None:
    fixed = _repair({"src/App.tsx": "import './missing.css'\nexport default 1\n"}, [],
                    ['[vite]: Rollup failed to resolve import "./missing.css" from "src/App.tsx".',
                     'Failed to resolve import "./missing.css" from "src/App.tsx". Does the file exist?'])
    assert fixed == {"src/App.tsx": "export default 1\n"}


def test_its_own_pinned_source_is_restored() -> None:
    path, pinned = sorted(app.source_files().items())[0]
    fixed = _repair({path: pinned + "\nconst broken: number = 'x'\n"},
                    [{"file": path, "line": 2, "message": "error TS2322"}])
    assert fixed == {path: pinned}


def test_anything_else_it_says_it_cannot_repair() -> None:
    with pytest.raises(GenerationError, match="cannot repair this deterministically: error TS2322"):
        _repair({"src/custom.ts": "const n: number = 'x'\n"},
                [{"file": "src/custom.ts", "line": 1, "message": "error TS2322: Type 'string' is not assignable"}])
