"""The API fuzzer's edges: its signing hook, the 429 shape, and fuzzing over versions that really exist."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from daemon.core import versions
from daemon.intake import submit
from tests.fuzz.api_support import CHECKS, Signer, error_shape
from tests.fuzz.conftest import fuzz_daemon_at
from tests.support import signed_headers

SEEDED_EXAMPLES = 400


def send(client: Any, method: str, path: str, body: bytes, auth: Signer) -> Any:
    """Sign like the fuzzer does (requests' prepared body), then send the very same bytes through ``client``."""
    prepared = requests.Request(method, f"http://testserver{path}", data=body,
                                headers={"content-type": "application/json"}).prepare()
    auth(prepared)
    return client.request(method, path, content=body, headers=dict(prepared.headers))


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[Any]:
    """A daemon holding the default caps' shape but a per-IP cap of 2."""
    with fuzz_daemon_at(tmp_path, per_ip_per_hour=2) as d, TestClient(d.asgi) as client:
        yield client


def test_signer_modes_reach_the_guard_as_intended(tmp_path: Path) -> None:
    seen: dict[str, set[Any]] = {}
    with fuzz_daemon_at(tmp_path) as d, TestClient(d.asgi) as client:
        for i in range(60):
            body = json.dumps({"userId": f"u{i}", "projectId": "p", "prompt": "a bakery"}).encode()
            auth = Signer()
            r = send(client, "POST", "/build-preview-for-new-project?wait=false", body, auth)
            code = r.json()["error"]["code"] if r.status_code >= 400 else r.status_code
            seen.setdefault(auth.mode, set()).add(code)
    assert seen == {"unsigned": {"signature_missing"}, "wrong": {"signature_invalid"},
                    "stale": {"timestamp_stale"}, "body-only": {202}, "v2": {202}}


def test_rate_cap_still_answers_429_in_the_error_shape(small_client: Any) -> None:
    body = b'{"prompt": "x"}'
    answers = [small_client.post("/ops/sync", content=body, headers=signed_headers("POST", "/ops/sync", body))
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    last = answers[-1]
    assert int(last.headers["retry-after"]) >= 1
    assert last.json()["error"]["code"] == "rate_limited"
    error_shape(type("R", (), {"status_code": 429, "headers": {"content-type": [last.headers["content-type"]]},
                               "content": last.content})())


@pytest.fixture(scope="module")
def seeded(fuzz_daemon: Any, api_schema: Any) -> dict[str, Any]:
    """Real rows to aim at: a queued, a failed and a deployed (no artifact, no repo) version in two projects."""
    ids = []
    for user, project in (("u1", "p1"), ("u1", "p2"), ("u2", "p1")):
        req = submit.parse_build_request({"userId": user, "projectId": project, "prompt": "a bakery"},
                                          rebuild=False, max_prompt=1000)
        ids.append(submit.submit_new(fuzz_daemon.rt, fuzz_daemon.queue, req).version_id)
    outbox = fuzz_daemon.rt.outbox
    versions.update(outbox, ids[1], status="failed", failure_reason="build_failed", failure_message="boom")
    versions.update(outbox, ids[2], status="deployed", preview_url="http://x.localhost:1/")
    return {"ids": ids, "schema": api_schema}


OPERATIONS = [
    ("GET", "/versions/{version_id}"), ("GET", "/versions/{version_id}/log"),
    ("GET", "/versions/{version_id}/diff/{other_id}"), ("GET", "/versions/{version_id}/screenshot"),
    ("POST", "/versions/{version_id}/pin"), ("POST", "/versions/{version_id}/unpin"),
    ("POST", "/rollback/{version_id}"), ("POST", "/rebuild-preview"), ("GET", "/versions"),
    ("POST", "/projects/{user_id}/{project_id}/undo"), ("POST", "/projects/{user_id}/{project_id}/redo"),
    ("POST", "/projects/{user_id}/{project_id}/restore"), ("GET", "/projects/{user_id}/{project_id}/preview"),
    ("GET", "/builds/{version_id}/logs"),
]
USERS = st.sampled_from(["u1", "u2", "u3", "U1", "u1 ", "../u1", "u" * 65])
PROJECTS = st.sampled_from(["p1", "p2", "p3", "P1", "p1%00", ""])


@given(data=st.data())
@settings(max_examples=SEEDED_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_fuzz_on_real_versions(seeded: dict[str, Any], data: st.DataObject) -> None:
    """Operations aimed at existing rows in every state, with query values and bodies drawn around the valid ones."""
    ids: list[str] = seeded["ids"]
    version = st.one_of(st.sampled_from(ids), st.sampled_from([ids[0].lower(), "0" * 26, "x"]))
    method, path = data.draw(st.sampled_from(OPERATIONS))
    if path == "/builds/{version_id}/logs":
        version = st.sampled_from([ids[1], ids[2], "0" * 26])  # a queued build's stream never ends (no worker)
    params = {"version_id": data.draw(version), "other_id": data.draw(version), "user_id": data.draw(USERS),
              "project_id": data.draw(PROJECTS)}
    params = {k: v for k, v in params.items() if "{" + k + "}" in path}
    query: dict[str, Any] = {}
    if "diff" in path:
        query["mode"] = data.draw(st.sampled_from(["patch", "stat", "files", "visual", "visual-stats", "nope", ""]))
    if "screenshot" in path:
        query["size"] = data.draw(st.sampled_from(["desktop", "mobile", "tablet", ""]))
    if path == "/versions":
        query = {"userId": data.draw(USERS), "projectId": data.draw(PROJECTS),
                 "limit": data.draw(st.sampled_from([1, 200, 1000, 0, 1001]))}
    if method == "POST" and path in ("/rollback/{version_id}", "/rebuild-preview"):
        query["wait"] = "false"
    body: Any = None
    if path == "/rollback/{version_id}":
        body = {"userId": data.draw(USERS), "projectId": data.draw(PROJECTS)}
    elif path == "/rebuild-preview":
        body = {"userId": data.draw(USERS), "projectId": data.draw(PROJECTS),
                "prompt": data.draw(st.sampled_from(["more red", "", " ", "x\x00y", "é" * 10])),
                "baseVersionId": data.draw(st.one_of(st.none(), version))}
    operation = seeded["schema"][path][method]
    kwargs: dict[str, Any] = {"path_parameters": params, "query": query}
    if body is not None:
        kwargs.update(body=body, media_type="application/json")
    case = operation.Case(**kwargs)
    signer = Signer()
    response = case.call(auth=signer)
    assert response.status_code < 500, f"{response.status_code} for {method} {case.formatted_path} ({signer.mode})"
    case.validate_response(response, checks=[c for c in CHECKS if c.__name__ != "negative_data_rejection"])
    error_shape(response)
