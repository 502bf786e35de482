"""A project's `public/` holds static sources (Vite copies it into the output): the build must find it in place,
on the first build and on a rebuild from the snapshot."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support.live import LiveDaemon

# As `vite build` does with publicDir: copy public/ into dist/, then write the page.
COPIER = '''
build = "mkdir -p dist && cp -R public/. dist/ && cp index.html dist/"
files = {"index.html": "<h1>" + req["prompt"] + "</h1>", "public/robots.txt": "User-agent: *",
         "public/img/logo.svg": "<svg/>"}
'''


def test_public_sources_survive_until_the_build_copies_them(tmp_path: Path) -> None:
    gen = write_generator(tmp_path, COPIER)
    d = LiveDaemon(tmp_path, generator_config(gen, "[render]\nenabled = false\n")).start()
    try:
        first = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "p", "prompt": "one"}).json()
        assert first["success"] is True, first
        assert d.preview(first["previewUrl"], "/robots.txt").text == "User-agent: *"
        again = d.post("/rebuild-preview", {"userId": "u", "projectId": "p", "prompt": "two"}).json()
        assert again["success"] is True, again
        url = again["previewUrl"]
        assert d.preview(url, "/img/logo.svg").text == "<svg/>" and "two" in d.preview(url).text
    finally:
        d.stop()
