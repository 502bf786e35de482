"""Against a real daemon process: build logs streamed as SSE while a real build runs; daemonctl's ops verbs."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import daemonctl
from daemon.cli import daemonctl_ops as ctl_ops
from daemon.core.config import load
from tests.support import TEST_SECRET
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm

# A `command` generator whose build prints a tick every 100 ms and finishes only once the file named in the
# prompt exists, so the test decides when the build ends (no timing assumptions).
SLOW_GENERATOR = textwrap.dedent('''
    import json, sys
    req = json.load(sys.stdin)
    release = req["prompt"].split("release=", 1)[1].strip()
    build_js = """
    const fs = require('fs');
    let i = 0;
    const t = setInterval(() => {
      i++;
      console.log('tick ' + i);
      if (i >= 3 && fs.existsSync(RELEASE)) {
        clearInterval(t);
        fs.mkdirSync('dist', {recursive: true});
        fs.writeFileSync('dist/index.html', '<h1>done</h1>');
        console.log('built');
      }
      if (i > 3000) process.exit(1);
    }, 100);
    """.replace("RELEASE", json.dumps(release))
    pkg = {"name": "slow", "version": "0.0.0", "private": True, "scripts": {"build": "node build.js"}}
    print(json.dumps({"name": "slow", "slug": "slow", "description": "d", "version": "0.1.0", "author": "t",
                      "repository": "", "license": "MIT", "tech_stack": [],
                      "metadata": {"tags": [], "industry_tags": [], "style_tags": [], "core_pages": {},
                                   "components": [], "design_tokens": {}, "rsc_path": ""},
                      "templateFiles": [{"path": "package.json", "content": json.dumps(pkg)}],
                      "files": [{"path": "build.js", "content": build_js},
                                {"path": "index.html", "content": "<h1>slow</h1>"}]}))
''')


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[LiveDaemon]:
    script = tmp_path / "gen.py"
    script.write_text(SLOW_GENERATOR)
    d = LiveDaemon(tmp_path, textwrap.dedent(f'''
        [generator]
        backend = "command"
        command = ["{sys.executable}", "{script}"]
        [build]
        audit = "off"
    '''))
    d.start()
    yield d
    d.stop()


def _events(resp: Any) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from an SSE response, as they arrive."""
    event, data = "message", list[str]()
    for raw in resp.iter_lines():
        if raw == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif raw.startswith("event:"):
            event = raw[6:].strip()
        elif raw.startswith("data:"):
            data.append(raw[5:].removeprefix(" "))


def ctl(d: LiveDaemon, *argv: str) -> int:
    """daemonctl's ops verbs through argparse, in-process, against the live daemon."""
    args = daemonctl.parser().parse_args(["--config", str(d.config), "--url", d.base, *argv])
    cfg = load(args.config, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
    result = ctl_ops.dispatch(args, None, cfg)
    assert result is not None
    return result


def test_sse_lines_arrive_while_the_build_runs_then_status(slow: LiveDaemon,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # in the project's own cache dir: the only part of the data dir a build step sees, besides its workspace
    release = slow.tmp / "data" / "projects" / "u" / "slow" / "cache" / "release"
    r = slow.post("/build-preview-for-new-project", {"userId": "u", "projectId": "slow",
                                                     "prompt": f"slow build release={release}"}, wait="false")
    assert r.status_code == 202, r.text
    vid = r.json()["versionId"]
    lines: list[str] = []
    final: dict[str, Any] | None = None
    seen_running = False
    with slow.http.stream("GET", f"{slow.base}/builds/{vid}/logs") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for event, data in _events(resp):
            if event == "status":
                final = json.loads(data)
                break
            lines.append(data)
            if data.strip() == "tick 2" and not seen_running:
                # a line of the running build reached us while the build is still running
                assert slow.get(f"/versions/{vid}").json()["status"] == "building"
                seen_running = True
                release.touch()
    assert seen_running
    assert final is not None and final["status"] == "deployed" and final["versionId"] == vid
    stored = slow.get(f"/versions/{vid}/log").text.splitlines()
    assert lines == stored  # every line once, in order, nothing lost between stored part and live part
    assert any(x.strip() == "built" for x in lines)

    # daemonctl, against the same daemon
    capsys.readouterr()
    assert ctl(slow, "logs", vid, "--follow") == 0
    followed = capsys.readouterr()
    assert "tick 1" in followed.out and f"{vid} deployed" in followed.err
    assert ctl(slow, "pin", vid) == 0 and "pinned" in capsys.readouterr().out
    assert slow.get(f"/versions/{vid}").json()["pinned"] is True
    assert ctl(slow, "pin", vid, "--off") == 0 and "unpinned" in capsys.readouterr().out
    assert ctl(slow, "cleanup", "--dry-run") == 0
    assert "dry run: nothing changed" in capsys.readouterr().out
    assert ctl(slow, "status", "--json") in (0, 1)  # 1 only when an alert fires on this machine
    status = json.loads(capsys.readouterr().out)
    assert status["daemon"] == "up" and status["versions"] == {"deployed": 1}
    assert "alerts" in status
    assert ctl(slow, "status") in (0, 1)
    assert "daemon     up" in capsys.readouterr().out
    metrics = slow.get("/metrics").text
    assert 'previewd_builds_total{status="deployed"} 1.0' in metrics
    assert "x-request-id" in slow.get("/healthz").headers

    slow.stop()
    assert ctl(slow, "status") == 3
    down = capsys.readouterr().out
    assert "DOWN" in down and "deployed 1" in down
    assert ctl(slow, "pin", vid) == 3
