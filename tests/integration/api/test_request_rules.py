"""Request bodies are validated once, by their msgspec structs (daemon/intake/requests.py): every rule answers the
same 400 it always did, and a body given as builtins (the dashboard) gets the very same answer as over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core.db import ProjectVersion
from daemon.core.errors import BadRequest
from daemon.intake.submit import parse_build_request
from sync.names import ID_RULE

NEW = "/build-preview-for-new-project"
REBUILD = "/rebuild-preview"


def _body(**kw: Any) -> dict[str, Any]:
    return {"userId": "u1", "projectId": "p1", "prompt": "A bakery site", **kw}


def _invalid(field: str, message: str) -> dict[str, Any]:
    return {"error": {"code": "invalid_field", "message": message, "field": field}}


CASES = [
    (NEW, _body(prompt="  \n "), _invalid("prompt", "prompt must not be empty")),
    (NEW, _body(prompt="a\x00b"), _invalid("prompt", "prompt must not contain NUL characters")),
    (NEW, _body(prompt="x" * 20_001), _invalid("prompt", "prompt is longer than 20000 characters")),
    (NEW, _body(framework="cobol"), _invalid("framework", "framework must be one of react, nextjs, vue, svelte")),
    (NEW, _body(targetPackage="../x"),
     _invalid("targetPackage", "targetPackage must stay inside the workspace (no '..', '.' or empty segments)")),
    (REBUILD, _body(targetPackage="/etc"),
     _invalid("targetPackage", "targetPackage must be a package name or a path relative to the workspace root")),
    (REBUILD, _body(prompt=""), _invalid("prompt", "prompt must not be empty")),
    (NEW, _body(userId="previews"), _invalid("userId", f"userId: Expected `str` {ID_RULE}")),
    (NEW, _body(orgId="_tmp"), _invalid("orgId", f"orgId: Expected `str` {ID_RULE}")),
    (REBUILD, _body(baseVersionId="v3"),
     _invalid("baseVersionId", "baseVersionId: Expected `str` matching regex '^[0-9A-HJKMNP-TV-Z]{26}$'")),
    (NEW, {"userId": "u1", "projectId": "p1"}, _invalid("prompt", "prompt: Object missing required field `prompt`")),
]


@pytest.mark.parametrize(("path", "payload", "answer"), CASES)
def test_each_rule_answers_its_400_once_over_http_and_from_builtins(api: Any, path: str, payload: dict[str, Any],
                                                                    answer: dict[str, Any]) -> None:
    r = api.post(path, payload, params={"wait": "false"})
    assert (r.status_code, r.json()) == (400, answer)
    with pytest.raises(BadRequest) as exc:
        parse_build_request(payload, rebuild=path == REBUILD, max_prompt=20_000)
    assert exc.value.status == 400 and exc.value.body() == answer
    assert ProjectVersion.select().count() == 0


def test_generate_has_the_build_prompt_and_framework_rules(api: Any) -> None:
    for payload, answer in [({"prompt": " "}, _invalid("prompt", "prompt must not be empty")),
                            ({"prompt": "x" * 20_001}, _invalid("prompt", "prompt is longer than 20000 characters")),
                            ({"prompt": "x", "framework": "rails"},
                             _invalid("framework", "framework must be one of react, nextjs, vue, svelte"))]:
        r = api.post("/generate", payload)
        assert (r.status_code, r.json()) == (400, answer)


def test_a_valid_body_reaches_the_domain_as_its_struct_with_the_target_normalised(api: Any) -> None:
    req = parse_build_request(_body(targetPackage="./apps/web/", orgId="o1"), rebuild=False, max_prompt=100)
    assert (req.user_id, req.project_id, req.target_package, req.org_id, req.base_version_id) == \
        ("u1", "p1", "apps/web", "o1", None)
    r = api.post(NEW, _body(targetPackage="./apps/web/"), params={"wait": "false"})
    assert r.status_code == 202, r.text
    assert ProjectVersion.get().target_package == "apps/web"
