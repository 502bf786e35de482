"""`daemonctl versions` against the real API in process: the live version marked (it follows undo, not the newest
build), each preview URL whole, 100 columns, and `--json` the API's answer with fields added, none removed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from ulid import ULID

from daemon.cli import daemonctl, versionlist
from daemon.cli.client import Client, SheenAuth
from daemon.core.config import Config
from daemon.core.db import Project, ProjectVersion
from daemon.deployers.previewnames import deployment_id_for, preview_url
from tests.support import TEST_SECRET, in_process_daemon

LONG_PROMPT = ("A bakery with a menu, opening hours, a contact form, a gallery of our sourdough loaves and "
               "a section about the family that has run it since 1952")


def _version(project: str, status: str, minutes: int, prompt: str, **cols: Any) -> str:
    vid = str(ULID())
    url = preview_url(deployment_id_for(project, vid), "localhost", 8080) if status == "deployed" else None
    ProjectVersion.create(version_id=vid, user_id="alice", project_id=project, prompt=prompt, status=status,
                          preview_url=url, created_at=datetime(2026, 12, 7, 9, 0) + timedelta(minutes=minutes),
                          **cols)
    return vid


@pytest.fixture
def ctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str]]]:
    """daemonctl's own main, its signed client talking to an in-process daemon's app."""
    monkeypatch.setenv("PREVIEWD_HMAC_SECRET", TEST_SECRET)
    with in_process_daemon(tmp_path, render={"enabled": False}) as d, TestClient(d.app) as http:
        http.auth = SheenAuth(TEST_SECRET)

        class InProcess(Client):
            def __init__(self, cfg: Config, base_url: str | None = None) -> None:
                super().__init__(cfg, "")
                self.http = http

        monkeypatch.setattr(daemonctl, "Client", InProcess)

        def run(*argv: str) -> tuple[int, str]:
            rc = daemonctl.main(["--config", str(tmp_path / "previewd.toml"), *argv])
            return rc, capsys.readouterr().out

        yield run


def test_the_live_version_is_marked_and_every_preview_url_is_shown_whole(ctl: Callable[..., tuple[int, str]]) -> None:
    first = _version("bakery", "deployed", 0, LONG_PROMPT)
    second = _version("bakery", "deployed", 5, "Make the headline say Fresh bread every morning")
    broke = _version("bakery", "failed", 9, "Add a pricing section", failure_reason="build_failed",
                     failure_message="src/App.tsx:3:7 error TS2322: Type 'string' is not assignable\nmore")
    Project.create(user_id="alice", project_id="bakery", live_version_id=first, redo_stack=json.dumps([second]))
    rc, out = ctl("versions", "alice", "bakery")
    assert rc == 0, out
    lines = out.splitlines()
    assert all(len(line) <= versionlist.WIDTH for line in lines), [line for line in lines if len(line) > 100]
    first_url = ProjectVersion.get_by_id(first).preview_url
    second_url = ProjectVersion.get_by_id(second).preview_url
    assert lines[0] == f"alice/bakery: live {first}"  # undone to the first: not the newest
    assert lines[1].split() == ["LIVE", "VERSION", "STATUS", "CREATED", "(UTC)", "PROMPT"]
    rows = {line[6:32]: i for i, line in enumerate(lines) if line[6:32] in (first, second, broke)}
    assert list(rows) == [broke, second, first]  # newest first
    assert lines[rows[first]].startswith(f"live  {first}  deployed   2026-12-07 09:00  A bakery with a menu")
    assert lines[rows[first]].endswith("…") and "1952" not in out  # the long prompt cut at a word, marked
    assert lines[rows[second]].startswith(f"      {second}  deployed")
    assert lines[rows[first] + 1] == f"      {first_url}" and lines[rows[second] + 1] == f"      {second_url}"
    assert lines[rows[broke] + 1] == "      build_failed: src/App.tsx:3:7 error TS2322: Type 'string' is not assignable"
    assert sum(line.startswith("live") for line in lines) == 1


def test_json_adds_live_fields_and_keeps_every_field_of_the_api(ctl: Callable[..., tuple[int, str]]) -> None:
    live = _version("bakery", "deployed", 0, "A bakery")
    newer = _version("bakery", "failed", 1, "Break it", failure_reason="build_failed")
    rc, out = ctl("versions", "alice", "bakery", "--json")
    assert rc == 0
    answer = json.loads(out)
    assert answer["liveVersionId"] == live  # no projects row: the newest deployed one is live
    assert [(v["versionId"], v["live"]) for v in answer["versions"]] == [(newer, False), (live, True)]
    from daemon.core import versions

    api = versions.history_json("alice", "bakery")
    assert [{k: v[k] for k in a} for a, v in zip(api, answer["versions"], strict=True)] == api


def test_a_project_with_nothing_live(ctl: Callable[..., tuple[int, str]]) -> None:
    _version("shop", "failed", 0, "A plant shop", failure_reason="generation_failed")
    rc, out = ctl("versions", "alice", "shop")
    assert rc == 0 and out.splitlines()[0] == "alice/shop: no live version" and "live  " not in out
    assert "      generation_failed" in out
    assert json.loads(ctl("versions", "alice", "shop", "--json")[1])["liveVersionId"] is None
    rc, out = ctl("versions", "alice", "nothing")
    assert rc == 0 and "(no versions)" in out


def test_the_answers_own_live_version_and_live_url_win() -> None:
    answer = {"versions": [{"versionId": "A" * 26, "status": "deployed", "previewUrl": "http://a.localhost/"}],
              "liveVersionId": "A" * 26, "liveUrl": "http://bakery--alice.localhost:8080/"}
    assert versionlist.live_version_id(None, "alice", "bakery", answer) == "A" * 26  # type: ignore[arg-type]
    text = versionlist.table("alice", "bakery", versionlist.annotate(answer, "A" * 26), width=100)
    assert text.splitlines()[:2] == [f"alice/bakery: live {'A' * 26}",
                                     "always the live version: http://bakery--alice.localhost:8080/"]
    assert text.splitlines()[3].startswith(f"live  {'A' * 26}  deployed")


@pytest.mark.parametrize(("text", "width", "expected"), [
    ("short", 10, "short"),
    ("fold\nthe   lines", 20, "fold the lines"),
    ("make the headline say fresh bread", 20, "make the headline…"),
    ("abcdefghijklmnopqrstuvwxyz", 10, "abcdefghi…"),
])
def test_fit(text: str, width: int, expected: str) -> None:
    assert versionlist.fit(text, width) == expected and len(versionlist.fit(text, width)) <= width


def test_a_rollback_row_names_its_source_whole_and_a_failure_keeps_to_the_width() -> None:
    source = "01M98CQNHYR16HGHZ92PCJVXVT"
    answer = {"versions": [
        {"versionId": "01M98CQNHYR16HGHZ92PCJVXVW", "status": "queued", "createdAt": "2026-12-07T09:10:00.000Z",
         "prompt": f"rollback to {source}", "rollbackOf": source},
        {"versionId": "01M98CQNHYR16HGHZ92PCJVXVZ", "status": "failed", "createdAt": "2026-12-07T09:09:00.000Z",
         "prompt": "x", "failureReason": "build_failed", "failureMessage": "error " * 40,
         "checks": {"typecheck": {"status": "fail"}, "lint": {"status": "skipped"}}}]}
    lines = versionlist.table("alice", "bakery", versionlist.annotate(answer, None), width=100).splitlines()
    assert lines[3] == f"      rollback of {source}"
    assert lines[5].startswith("      tsc:fail lint:skip  build_failed: error error") and lines[5].endswith("…")
    assert all(len(line) <= 100 for line in lines)
