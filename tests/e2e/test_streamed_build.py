"""A streamed first build through the real daemon, confined: the claude backend over the fake CLI, the install
started in its own bubblewrap view while the answer is still coming, real pnpm."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fakes.tiny_generator import contract_json
from tests.support.live import LiveDaemon

FAKE_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "claude"


def test_streamed_first_build_installs_while_generating(tmp_path: Path) -> None:
    marker = tmp_path / "data" / "projects" / "u" / "s" / "work" / "node_modules" / ".previewd-install.json"
    (tmp_path / "answer.json").write_text(contract_json(
        "mkdir -p dist && cat src/page.html > dist/index.html", {"src/page.html": "<h1>streamed</h1>"}))
    # The daemon passes its generator an allow-listed environment only: the fake's settings ride in a wrapper.
    # It holds the `files` list back until the install's marker exists: only an install started meanwhile frees it.
    wrapper = tmp_path / "claude"
    wrapper.write_text(f"#!/bin/sh\nexport FAKE_CLAUDE_RESULT='{tmp_path / 'answer.json'}' FAKE_CLAUDE_CHUNK=60 "
                       f"FAKE_CLAUDE_PAUSE_S=0.5 FAKE_CLAUDE_HOLD_AT='\"files\"' FAKE_CLAUDE_HOLD_UNTIL='{marker}'\n"
                       f"exec '{sys.executable}' '{FAKE_CLAUDE}' \"$@\"\n")
    wrapper.chmod(0o755)
    d = LiveDaemon(tmp_path, f'[generator]\nbackend = "claude"\nclaude_executable = "{wrapper}"\n'
                             '[build]\naudit = "off"\n[render]\nenabled = false\n').start()
    try:
        out = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "s", "prompt": "x"}).json()
        assert out["success"] is True, out
        assert d.preview(out["previewUrl"]).text == "<h1>streamed</h1>"
        log = d.get(f"/versions/{out['versionId']}/log").text
        assert "isolation: each step in its own bubblewrap view" in log
        started = log.index("install: started while the generator writes")
        assert started < log.index("generator: full contract") < log.index("install: done while the generator wrote")
        assert log.count("$ pnpm install") == 1
    finally:
        d.stop()
