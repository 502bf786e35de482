"""What the dashboard tells a person first: the production card, the live site in the project list, step progress,
titles from prompts, the message after an action, confirmations with both versions, charts' builds, the timings
without rollbacks. Pages over the real app (TestClient), rows written through the domain functions."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.response import ServerSentEventMessage
from litestar.testing import TestClient

from daemon.cli.serve import Daemon
from daemon.core import versions
from daemon.core.db import ProjectVersion, utcnow
from daemon.ops.buildstats import window_stats
from daemon.project.buildlog import BuildLog
from daemon.ui import present
from daemon.ui.charts import builds_bars, reason_bars
from daemon.ui.logview import readable
from tests.support import in_process_daemon
from tests.unit.ui.test_dashboard import HASH, PASSWORD, csrf_of, deployed, sign_in


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with in_process_daemon(tmp_path, f'[ui]\npassword_hash = "{HASH}"\n') as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[TestClient[Any]]:
    with TestClient(daemon.app) as c:
        sign_in(c, password=PASSWORD)
        yield c


def failed(user: str = "alice", project: str = "site", prompt: str = "broken", parent: str | None = None,
           reason: str = "build_failed") -> ProjectVersion:
    v = versions.create(None, user_id=user, project_id=project, prompt=prompt, kind="rebuild" if parent else "new",
                        parent_version_id=parent)
    return versions.update(None, v.version_id, status="failed", failure_reason=reason, failure_message="exit 2",
                           build_duration_ms=900)


def row(**fields: Any) -> Any:
    base = {"version_id": "01KC2RZ5Q8CW1W5QK1JX7WZ3Z4", "prompt": "", "status": "deployed", "kind": "new",
            "rollback_of": None,
            "failure_reason": None, "created_at": utcnow(), "deployed_at": None}
    return SimpleNamespace(**{**base, **fields})


def test_titles_come_from_prompts_cut_at_a_word() -> None:
    assert present.title(row(prompt="  A bakery\nwith a menu ")) == "A bakery with a menu"
    long = present.title(row(prompt="Make the headline say Fresh bread every morning and add opening hours please"))
    assert long == "Make the headline say Fresh bread every morning and add…" and len(long) <= 61
    assert present.title(row(prompt="")) == "Version JX7WZ3Z4"
    assert present.short("01KC2RZ5Q8CW1W5QK1JX7WZ3Z4") == "JX7WZ3Z4"


def test_a_rollback_is_titled_by_its_target(daemon: Daemon) -> None:
    a = deployed(prompt="Blue page")
    assert present.title(row(kind="rollback", rollback_of=a.version_id, prompt=f"rollback to {a.version_id}")) \
        == "Rollback to Blue page"
    gone = row(kind="rollback", rollback_of="01KC2RZ5Q8CW1W5QK1JX7WZZZZ", prompt="rollback to ...")
    assert present.title(gone) == "Rollback to JX7WZZZZ"
    assert present.title_of_rollback(row(rollback_of=a.version_id)) == f"“Blue page” ({a.version_id[-8:]})"


def test_step_progress_follows_the_phase() -> None:
    def states(v: Any, live: tuple[str, float] | None = None, pending: bool = False,
               timings: dict[str, int] | None = None) -> list[str]:
        return [s.state for s in present.progress(v, timings, live, pending)]

    assert states(row(status="queued")) == ["current", "todo", "todo", "todo", "todo", "todo"]
    assert states(row(status="building"), ("installing", 1.0)) == ["done", "done", "current", "todo", "todo", "todo"]
    assert states(row(status="deploying")) == ["done"] * 4 + ["current", "todo"]
    assert states(row(status="deployed"), pending=True) == ["done"] * 5 + ["current"]
    assert states(row(status="deployed")) == ["done"] * 6
    assert states(row(status="failed", failure_reason="install_failed")) == ["done", "done", "failed", "todo",
                                                                              "todo", "todo"]
    steps = present.progress(row(status="deployed"), {"install": 1200, "bundle": 0}, None, False)
    assert (steps[2].ms, steps[3].ms) == (1200, None)
    redeploy = states(row(status="deployed", kind="rollback"), timings={"deploy": 40})
    assert redeploy == ["done", "skipped", "skipped", "skipped", "done", "done"]


def test_the_pipeline_notes_its_phase_and_the_stream_tells_it(tmp_path: Path) -> None:
    blog = BuildLog(tmp_path / "log")
    assert blog.phase is None
    blog.enter("installing")
    first = blog.phase
    blog.enter("installing")
    assert blog.phase == first  # a repeat keeps its start
    phases = iter([None, ("generating", 5.0), ("generating", 5.0), ("building", 9.0)])

    async def source() -> AsyncGenerator[ServerSentEventMessage, None]:
        for i in range(4):
            yield ServerSentEventMessage(data=f"line {i}", id=i)

    async def run() -> list[ServerSentEventMessage]:
        return [m async for m in readable(source(), phase=lambda: next(phases))]

    out = asyncio.run(run())
    kinds = [(m.event or "line", m.data) for m in out]
    assert kinds == [("line", "line 0"), ("step", json.dumps({"step": "generating", "since": 5.0})),
                     ("line", "line 1"), ("line", "line 2"), ("step", json.dumps({"step": "building", "since": 9.0})),
                     ("line", "line 3")]


def test_production_card_and_live_row(client: TestClient[Any]) -> None:
    a = deployed(prompt="A bakery with a menu", render_status="ok")
    b = deployed(prompt="Make the headline say Fresh bread", parent=a.version_id)
    bad = failed(prompt="Add a <script> gallery", parent=b.version_id)
    page = client.get("/ui/projects/alice/site").text
    card = page[page.index('class="card production"'):page.index("</section>", page.index('class="card production"'))]
    assert "Make the headline say Fresh bread" in card and present.short(b.version_id) in card
    assert 'class="button primary visit" href="http://x.localhost/"' in card and "Live since" in card
    latest = page[page.index('id="latest-build"'):]
    assert "Add a &lt;script&gt; gallery" in latest[:600] and "the live site is unchanged" in latest[:600]
    assert f'class="version deployed is-live" id="v-{b.version_id}"' in page
    assert f'id="v-{bad.version_id}"' in page and page.count("is-live") == 1
    assert f">{b.version_id}<" not in page  # ids are shortened; titles name versions


def test_projects_status_is_the_live_site_with_the_last_build_beside(client: TestClient[Any]) -> None:
    a = deployed(prompt="A bakery")
    failed(parent=a.version_id)
    failed(user="bob", project="never", prompt="x")
    page = client.get("/ui/projects").text
    alice = page[page.index("alice/<strong>site"):page.index("</tr>", page.index("alice/<strong>site"))]
    assert "Live</span>" in alice and "A bakery" in alice and 'class="status failed"' in alice
    assert '<span class="cause">exit 2</span>' in alice  # the failed last build's one-line cause
    bob = page[page.index("bob/<strong>never"):page.index("</tr>", page.index("bob/<strong>never"))]
    assert "Not live" in bob


def test_actions_end_with_a_message_naming_the_live_version(client: TestClient[Any]) -> None:
    a = deployed(prompt="first version")
    b = deployed(prompt="second version", parent=a.version_id)
    confirm = client.get("/ui/projects/alice/site/confirm/undo").text
    now = confirm[confirm.index("Live now"):confirm.index("Goes live")]
    assert "second version" in now and present.short(b.version_id) in now
    assert "first version" in confirm[confirm.index("Goes live"):]
    r = client.post("/ui/projects/alice/site/undo", data={"_csrf_token": csrf_of(client, "/ui/")},
                    follow_redirects=False)
    assert r.headers["location"] == "/ui/projects/alice/site?done=undo"
    page = client.get(r.headers["location"]).text
    flash = page[page.index('id="flash"'):page.index("</div>", page.index('id="flash"'))]
    assert "Undone." in flash and "first version" in flash and present.short(a.version_id) in flash
    r = client.post(f"/ui/versions/{b.version_id}/pin", data={"_csrf_token": csrf_of(client, "/ui/")},
                    follow_redirects=False)
    page = client.get(r.headers["location"]).text
    assert "Pinned “second version”" in page and "Live now:" in page
    # ?done= is a word from a fixed list: free text in the URL never reaches the page
    assert 'id="flash"' not in client.get("/ui/projects/alice/site?done=Your+account+is+closed").text


def test_reason_chart_and_bars_link_to_the_builds_they_count(client: TestClient[Any]) -> None:
    a = deployed(prompt="fine")
    failed(prompt="broke once", parent=a.version_id)
    failed(user="bob", project="p", prompt="broke on install", reason="install_failed")
    page = client.get("/ui/").text
    latest = page[page.index("Latest failures"):page.index("</section>", page.index("Latest failures"))]
    assert "broke once" in latest and "broke on install" in latest and "exit 2" in latest and "fine" not in latest
    link = re.search(r'<a href="(/ui/builds\?window=24h&amp;status=failed&amp;reason=build_failed)">', page)
    assert link, "the reason bar links to its builds"
    listed = client.get(link.group(1).replace("&amp;", "&")).text
    assert "broke once" in listed and "broke on install" not in listed and "fine" not in listed
    hour = re.search(r'<a href="(/ui/builds\?at=[^"]+&amp;hours=1)" aria-label="[^"]*: 3 builds', page)
    assert hour, "the hour's bar links to its 3 builds"
    listed = client.get(hour.group(1).replace("&amp;", "&")).text
    assert listed.count('class="build ') == 3
    assert client.get("/ui/builds?at=junk").status_code == 400
    assert client.get("/ui/builds?status=queued").status_code == 400


def test_chart_parts_escape_and_link() -> None:
    t = utcnow()
    svg = str(builds_bars([(t, 2, 1), (t, 0, 0)], title="x", link=lambda s: f"/ui/builds?at={s:%H}&x=<"))
    assert svg.count("<a ") == 1 and 'role="group"' in svg and "x=&lt;" in svg  # empty bars link nowhere
    bars = str(reason_bars([("<b>", 1)], total=2, title="Why", link=lambda r: f"/r?{r}"))
    assert "&lt;b&gt;" in bars and "1 (50%)" in bars and 'href="/r?&lt;b&gt;"' in bars


def test_rollbacks_are_left_out_of_the_timings(tmp_path: Path) -> None:
    with in_process_daemon(tmp_path):
        now = utcnow()
        for kind, ms in (("new", 10_000), ("rebuild", 20_000), ("rollback", 30), ("rollback", 40)):
            v = versions.create(None, user_id="u", project_id="p", prompt="x", kind=kind)
            versions.update(None, v.version_id, status="deployed", build_duration_ms=ms,
                            created_at=now - timedelta(minutes=5))
        day = window_stats(24, now=now)
        assert day.finished == 4  # counted as builds
        assert day.durations["build"] == {"p50": 10_000, "p95": 20_000, "count": 2}
