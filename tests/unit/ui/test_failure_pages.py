"""Failures readable in the dashboard (issue 27): the version page's log without escape sequences, opened at its
end with its first error line marked, the "last part" note only for a cut log, a failure's one-line cause on the
version page and the timeline, a rollback that says what it did; and the live stream stripped the same way."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.response import ServerSentEventMessage
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.ui.access import hash_password
from daemon.ui.logview import log_view, readable
from tests.support import in_process_daemon

PASSWORD = "correct horse battery staple"
ESC = "\x1b"
TSC_FAIL = (f"{ESC}[36mvite v5.4.2 {ESC}[32mbuilding for production...{ESC}[39m\n"
            "✓ 3 modules transformed.\n"
            f"src/App.tsx(3,7): {ESC}[91merror{ESC}[0m TS2322: Type 'string' is not assignable to type 'number'.\n"
            "src/App.tsx(9,1): error TS2304: Cannot find name 'foo'.\n"
            " ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL  site@0.0.0 build: `tsc && vite build`\n"
            "[previewd 2026-12-07 14:03:23.123Z] failed: build_failed: pnpm build exited 2\n")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with in_process_daemon(tmp_path, f'[ui]\npassword_hash = "{hash_password(PASSWORD)}"\n') as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[TestClient[Any]]:
    with TestClient(daemon.app) as c:
        m = re.search(r'name="_csrf_token" value="([^"]+)"', c.get("/ui/sign-in").text)
        assert m
        c.post("/ui/sign-in", data={"password": PASSWORD, "_csrf_token": m.group(1)}, follow_redirects=False)
        yield c


def failed(daemon: Daemon, log: str, reason: str = "build_failed", message: str = "pnpm build exited 2",
           project: str = "site") -> ProjectVersion:
    v = versions.create(None, user_id="alice", project_id=project, prompt="make it blue", kind="new")
    daemon.rt.layout.log_path(v.version_id).parent.mkdir(parents=True, exist_ok=True)
    daemon.rt.layout.log_path(v.version_id).write_text(log, encoding="utf-8")
    return versions.update(None, v.version_id, status="failed", failure_reason=reason, failure_message=message)


def test_version_page_log_is_stripped_marked_and_opens_at_its_end(client: TestClient[Any], daemon: Daemon) -> None:
    v = failed(daemon, TSC_FAIL)
    page = client.get(f"/ui/versions/{v.version_id}").text
    assert ESC not in page and "[36m" not in page and "vite v5.4.2 building for production..." in page
    # the first error line (tsc's), not the later ones, is marked and linked
    assert re.search(r'<mark class="error-line" id="first-error">src/App.tsx\(3,7\): error TS2322: Type '
                     r'&#39;string&#39;', page)
    assert page.count('<mark') == 1 and 'href="#first-error"' in page
    assert 'data-end' in page  # ui.js scrolls such a log to its end
    assert '<p class="cause" id="cause"><strong>Cause:</strong> src/App.tsx(3,7): error TS2322' in page
    assert "Showing the last part" not in page


def test_a_log_without_error_lines_has_no_mark() -> None:
    view = log_view(b"one\ntwo\n", 8)
    assert view.error is None and view.before == "one\ntwo\n" and not view.cut and not view.empty
    marked = log_view(b"ok\nError: boom\nafter\n", 20)
    assert (marked.before, marked.error, marked.after) == ("ok\n", "Error: boom", "\nafter\n")  # the text unchanged


def test_last_part_note_compares_bytes_with_bytes(client: TestClient[Any], daemon: Daemon) -> None:
    # A complete log of multi-byte characters: more bytes than characters, and nothing was cut.
    whole = failed(daemon, "✓ built ünïcödé ✓\n" * 150)
    assert len("✓ built ünïcödé ✓\n" * 150) < daemon.rt.layout.log_path(whole.version_id).stat().st_size
    assert daemon.rt.layout.log_path(whole.version_id).stat().st_size < daemon.rt.cfg.server.max_log_bytes
    assert "Showing the last part" not in client.get(f"/ui/versions/{whole.version_id}").text
    # A log over the cap is cut: the note says so.
    big = failed(daemon, "line of a long log\n" * (daemon.rt.cfg.server.max_log_bytes // 19 + 100))
    assert "Showing the last part" in client.get(f"/ui/versions/{big.version_id}").text


def test_timeline_rows_of_failed_builds_carry_their_cause(client: TestClient[Any], daemon: Daemon) -> None:
    tool = failed(daemon, TSC_FAIL)
    named = failed(daemon, "", reason="interrupted", message="droplet b lost the lease of this project\nmore")
    ok = versions.go_live(None, versions.create(None, user_id="alice", project_id="site", prompt="fine",
                                                kind="new").version_id, 60)
    page = client.get("/ui/projects/alice/site").text
    assert "src/App.tsx(3,7): error TS2322" in page and "droplet b lost the lease of this project" in page
    assert page.count('<p class="cause">') == 2
    row = page[page.index(f'id="v-{ok.version_id}"'):page.index(f'id="v-{named.version_id}"')]
    assert 'class="cause"' not in row  # a deployed row has none
    assert tool.version_id in page


def test_causes_are_read_once_per_failed_row(daemon: Daemon) -> None:
    v = failed(daemon, TSC_FAIL)
    logs = daemon.services.logs
    assert logs.cause(v).startswith("src/App.tsx(3,7): error TS2322")
    daemon.rt.layout.log_path(v.version_id).unlink()  # the log is not read again for the same row
    assert logs.cause(v).startswith("src/App.tsx(3,7): error TS2322")
    moved = versions.update(None, v.version_id, failure_reason="interrupted", failure_message="lease lost")
    assert logs.cause(moved) == "lease lost"  # a rewritten row is worked out anew
    assert logs.cause(versions.update(None, v.version_id, status="deployed")) == ""


def test_rollback_redeploy_says_what_it_did(client: TestClient[Any], daemon: Daemon) -> None:
    target = versions.go_live(None, versions.create(None, user_id="alice", project_id="site", prompt="first",
                                                    kind="new").version_id, 60)
    rb = versions.create(None, user_id="alice", project_id="site", prompt=f"rollback to {target.version_id}",
                         kind="rollback", parent_version_id=target.version_id, rollback_of=target.version_id)
    rb = versions.go_live(None, rb.version_id, 60)
    page = client.get(f"/ui/versions/{rb.version_id}").text
    assert f"Rollback of {target.version_id[-8:]}: its artifact was redeployed as is, so nothing was built" in page
    assert '<pre class="log"' not in page and "No log was written" not in page
    bad = versions.create(None, user_id="alice", project_id="site", prompt="rollback", kind="rollback",
                          parent_version_id=target.version_id, rollback_of=target.version_id)
    versions.update(None, bad.version_id, status="failed", failure_reason="deploy_failed",
                    failure_message="artifact unusable: Bad magic number")
    page = client.get(f"/ui/versions/{bad.version_id}").text
    assert "the redeploy failed, artifact unusable: Bad magic number" in page
    assert "Cause:</strong> artifact unusable: Bad magic number" in page


def test_live_stream_lines_are_stripped_and_closing_closes_the_source() -> None:
    closed: list[bool] = []

    async def source() -> AsyncGenerator[ServerSentEventMessage, None]:
        try:
            yield ServerSentEventMessage(data=f"{ESC}[36mvite{ESC}[39m building", id=1)
            yield ServerSentEventMessage(data='{"status": "failed"}', event="status")
            yield ServerSentEventMessage(comment="keepalive")
        finally:
            closed.append(True)

    async def run() -> list[ServerSentEventMessage]:
        gen = readable(source())
        first = await gen.__anext__()
        second = await gen.__anext__()
        await gen.aclose()  # a client that goes away mid-stream
        return [first, second]

    first, second = asyncio.run(run())
    assert first.data == "vite building" and first.id == 1
    assert second.event == "status" and second.data == '{"status": "failed"}'
    assert closed == [True]  # the stream's slot is freed by the source's own finally


def test_live_stream_endpoint_strips_a_finished_log(client: TestClient[Any], daemon: Daemon) -> None:
    v = failed(daemon, TSC_FAIL)
    body = client.get(f"/ui/versions/{v.version_id}/log-stream").text
    assert "data: vite v5.4.2 building for production..." in body and ESC not in body
    assert "event: status" in body


def test_try_to_fix_shows_what_will_be_sent_and_the_api_queues_one_attempt(tmp_path: Path) -> None:
    # README "Repair", suggest mode: the failed version's request, shown before it is sent; the signed API route
    # queues one attempt (a version of its own, parent = the failure) and answers 202 without waiting.
    import json

    from tests.support import signed_headers

    with in_process_daemon(tmp_path, f'[ui]\npassword_hash = "{hash_password(PASSWORD)}"\n'
                                     '[repair]\nmode = "suggest"\n') as d, TestClient(d.app) as c:
        v = failed(d, TSC_FAIL)
        req = {"reason": "build_failed", "message": "pnpm build exited 2", "logTail": [],
               "errors": [{"location": "src/App.tsx:3:7", "message": "error TS2322: Type 'string'",
                           "source": ["   3> const n: number = 'x'"]}]}
        versions.update(None, v.version_id, repair_request=json.dumps(req))
        m = re.search(r'name="_csrf_token" value="([^"]+)"', c.get("/ui/sign-in").text)
        assert m
        c.post("/ui/sign-in", data={"password": PASSWORD, "_csrf_token": m.group(1)}, follow_redirects=False)
        link = f'href="/ui/versions/{v.version_id}/repair" id="try-to-fix"'
        assert link in c.get(f"/ui/versions/{v.version_id}").text
        page = c.get(f"/ui/versions/{v.version_id}/repair").text
        assert "This is a REPAIR" in page and "src/App.tsx:3:7" in page and "const n: number = &#39;x&#39;" in page
        body = json.dumps({"userId": "alice", "projectId": "site"}).encode()
        path = f"/versions/{v.version_id}/repair?wait=false"
        r = c.post(path, content=body, headers={**signed_headers("POST", path, body),
                                                "content-type": "application/json"})
        assert r.status_code == 202, r.text
        attempt = versions.get(r.json()["versionId"])
        assert (attempt.kind, attempt.parent_version_id, attempt.repair_of, attempt.repair_attempt) == \
            ("repair", v.version_id, v.version_id, 1)
        wrong = json.dumps({"userId": "bob", "projectId": "site"}).encode()
        r = c.post(path, content=wrong, headers={**signed_headers("POST", path, wrong),
                                                 "content-type": "application/json"})
        assert r.status_code in (404, 409)
