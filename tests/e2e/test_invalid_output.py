"""A generator's bad output fails the version with invalid_output and writes nothing, through the real daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support.live import LiveDaemon

# The prompt picks the trick; "fine" builds a good page afterwards.
TRICKS = '''
p = req["prompt"]
build = "mkdir -p dist && cp index.html dist/"
files = {"index.html": "<h1>ok</h1>"}
if p == "escape":
    files["../../escaped.txt"] = "x"
elif p == "absolute":
    files["/tmp/absolute-previewd.txt"] = "x"
elif p == "git":
    files[".git/hooks/post-checkout"] = "#!/bin/sh"
elif p == "modules":
    files["node_modules/.bin/vite"] = "#!/bin/sh"
elif p == "npmrc":
    files[".npmrc"] = "ignore-scripts=false"
elif p == "garbage":
    print("this is not JSON")
    raise SystemExit(0)
'''


@pytest.mark.parametrize("trick", ["escape", "absolute", "git", "modules", "npmrc", "garbage"])
def test_rejected_output_writes_nothing(tmp_path: Path, trick: str) -> None:
    gen = write_generator(tmp_path, TRICKS)
    d = LiveDaemon(tmp_path, generator_config(gen, "[render]\nenabled = false\n")).start()
    try:
        body = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "p", "prompt": trick}).json()
        assert body["success"] is False and body["error"]["code"] == "invalid_output", body
        work = tmp_path / "data" / "projects" / "u" / "p" / "work"
        assert not work.exists() or list(work.iterdir()) == []
        assert not (tmp_path / "data" / "projects" / "escaped.txt").exists()
        assert not Path("/tmp/absolute-previewd.txt").exists()
        assert list((tmp_path / "data" / "previews").iterdir()) == []
        ok = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "p", "prompt": "fine"}).json()
        assert ok["success"] is True, ok
    finally:
        d.stop()
