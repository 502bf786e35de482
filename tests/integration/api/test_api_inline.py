"""The API over an in-process daemon whose queue runs builds inline (Huey's immediate mode): real pipeline, no worker.

The generator is a tiny dependency-free command project, so a build is pnpm running one shell line (seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from litestar.testing import TestClient

from daemon.core.db import ProjectVersion
from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import ApiClient

if TYPE_CHECKING:
    from daemon.cli.serve import Daemon

NEW = "/build-preview-for-new-project"
REBUILD = "/rebuild-preview"

# "broken ..." prompts build a project whose build script fails with a message; others echo the prompt.
PAGES = '''
if req["prompt"].startswith("broken"):
    build = "echo 'error TS2307: cannot find module ./nope' >&2; exit 2"
else:
    build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>"}
'''


@pytest.fixture
def inline(tmp_path: Path, make_daemon: Callable[..., Daemon]) -> Iterator[ApiClient]:
    d = make_daemon(generator_config(write_generator(tmp_path, PAGES)), immediate=True, render={"enabled": False})
    with TestClient(d.asgi) as client:
        yield ApiClient(client, d)


def body(prompt: str, **kw: str) -> dict[str, str]:
    return {"userId": "u1", "projectId": "p1", "prompt": prompt, **kw}


def test_a_new_build_runs_inside_its_request(inline: ApiClient) -> None:
    r = inline.post(NEW, body("A bakery"))
    assert r.status_code == 200, r.text
    vid = r.json()["versionId"]
    row = ProjectVersion.get_by_id(vid)
    assert row.status == "deployed"
    assert r.json() == {"success": True, "previewUrl": row.preview_url, "versionId": vid,
                        "buildTime": row.build_duration_ms}
    assert inline.daemon.queue.pending() == 0
    assert inline.get("/projects/u1/p1/preview").json()["latestVersionId"] == vid
    host = row.preview_url.split("//", 1)[1].split("/", 1)[0]
    page = inline.get("/", headers={"host": host})
    assert page.status_code == 200 and page.text == "<h1>A bakery</h1>"


def test_a_rebuild_starts_from_the_live_version_and_moves_the_pointer(inline: ApiClient) -> None:
    v1 = inline.post(NEW, body("first")).json()["versionId"]
    r = inline.post(REBUILD, body("second"), params={"wait": "false"})
    assert r.status_code == 200 and r.json()["success"] is True, r.text  # finished before the answer
    v2 = r.json()["versionId"]
    assert ProjectVersion.get_by_id(v2).parent_version_id == v1
    assert inline.get("/projects/u1/p1/preview").json()["latestVersionId"] == v2
    history = inline.get("/versions", params={"userId": "u1", "projectId": "p1"}).json()["versions"]
    assert [(v["versionId"], v["status"]) for v in history] == [(v2, "deployed"), (v1, "deployed")]


def test_a_failing_build_answers_with_its_code_and_log_tail(inline: ApiClient) -> None:
    r = inline.post(NEW, body("broken page"))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["success"] is False and answer["error"]["code"] == "build_failed", answer
    assert any("error TS2307: cannot find module ./nope" in line for line in answer["logTail"]), answer["logTail"]
    assert ProjectVersion.get_by_id(answer["versionId"]).status == "failed"
    assert inline.get("/projects/u1/p1/preview").status_code == 404
