"""The repair loop through the real daemon (README "Repair"): a blank page from a runtime exception, found by the
render check after it went live, repaired by the command backend from the `repair` field it receives; and a
build error whose answer waits for the loop and answers with the repaired version. One daemon for both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import wait_until
from tests.support.live import LiveDaemon

# The first build of "throw" pages throws at runtime (the page stays blank), of "broken" ones fails to build with a
# tsc-style error; a repair request gets the fixed page. Each request is kept for the test to read.
PAGES = '''
import pathlib
log = pathlib.Path(__file__).with_name("requests.jsonl")
with open(log, "a") as fh:
    fh.write(json.dumps(req) + "\\n")
p = req["prompt"]
build = "mkdir -p dist && cp index.html dist/"
if req.get("repair"):
    body = "<h1 style='font-size:64px'>Fixed</h1>"
elif "throw" in p:
    body = "<div id=root></div><script>null.render(); document.body.append('never')</script>"
else:
    body = "<h1>Broken</h1>"
    build = "echo \\"src/main.ts(2,14): error TS2322: Type 'string' is not assignable to type 'number'.\\" && exit 2"
files = {"index.html": "<html><body>" + body + "</body></html>"}
'''


def _requests(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tmp / "requests.jsonl").read_text().splitlines()]


def test_a_blank_page_and_a_build_error_are_repaired(tmp_path: Path) -> None:
    d = LiveDaemon(tmp_path, generator_config(write_generator(tmp_path, PAGES),
                                              '[repair]\nmode = "auto"\nmax_attempts = 2\n')).start()
    try:
        # a build error: the answer waits for the loop and is the repaired version's, saying what the loop did
        body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "err", "prompt": "broken"}).json()
        assert body["success"] is True and body["repairOf"] != body["versionId"], body
        assert body["repair"]["outcome"] == "repaired" and body["repair"]["attempts"] == 1
        root = d.get(f"/versions/{body['repairOf']}").json()
        assert root["status"] == "failed" and root["repair"]["repairedVersionId"] == body["versionId"]
        sent = _requests(tmp_path)[-1]["repair"]
        assert sent["errors"][0]["location"] == "src/main.ts:2:14" and "smallest" in sent["instruction"]
        assert all("[previewd " not in line and str(tmp_path) not in line for line in sent["logTail"])

        # a page that throws: live, render-checked, then repaired by a new version that renders
        body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "page", "prompt": "throw"}).json()
        assert body["success"] is True
        first = body["versionId"]

        def ended() -> dict[str, Any] | None:
            v: dict[str, Any] = d.get(f"/versions/{first}").json()
            return v if (v["repair"] or {}).get("status") == "done" else None

        v = wait_until(ended, 120, interval=0.3, what="the render repair to end")
        assert v["renderStatus"] == "errors" and v["repair"]["outcome"] == "repaired", v
        fixed = d.get(f"/versions/{v['repair']['repairedVersionId']}").json()
        assert fixed["renderStatus"] == "ok" and fixed["parentVersionId"] == first and fixed["repairAttempt"] == 1
        sent = _requests(tmp_path)[-1]["repair"]
        assert sent["reason"] == "render_errors" and any("null" in e for e in sent["render"]["jsErrors"])
        assert d.get("/projects/u/page/preview").json()["latestVersionId"] == fixed["versionId"]
    finally:
        d.stop()
