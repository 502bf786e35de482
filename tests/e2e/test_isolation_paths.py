"""A symlink planted to redirect the daemon's own writes: by a build (it cannot plant one), and on disk (the daemon
refuses to follow it and fails the build clearly, writing nothing elsewhere)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, page, start_daemon, tree_digest, victim_still_fine
from tests.support.live import LiveDaemon

ATTACKS = {
    # Points mallory's next project at alice's live preview; "@TARGET@" is that deployment's id.
    "plant": {"build": (
        "mkdir -p dist && { (ln -s ../../previews/@TARGET@ @DATA@/projects/mallory/m9) 2>/dev/null"
        " && echo planted=yes || echo planted=no; } > dist/index.html")},
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    tmp = tmp_path_factory.mktemp("paths")
    d = start_daemon(tmp, ATTACKS)
    try:
        first = build(d, "alice", "site", "victim")
        assert page(d, first) == VICTIM_PAGE
        dep = first["previewUrl"].split("//", 1)[1].split(".", 1)[0]
        (tmp / "target.txt").write_text(dep)
        yield d
    finally:
        d.stop()


def _preview_dir(d: LiveDaemon) -> Path:
    return d.tmp / "data" / "previews" / (d.tmp / "target.txt").read_text()


def test_a_build_cannot_plant_a_link_in_the_data_dir(live: LiveDaemon) -> None:
    preview = _preview_dir(live)
    before = tree_digest(preview)
    body = build(live, "mallory", "evil", "plant")
    assert page(live, body).split() == ["planted=no"]
    assert not os.path.lexists(live.tmp / "data" / "projects" / "mallory" / "m9")
    # The next signed request for that project builds in a project dir of its own.
    m9 = build(live, "mallory", "m9", "a page")
    assert page(live, m9) == VICTIM_PAGE
    assert (live.tmp / "data" / "projects" / "mallory" / "m9" / "work").is_dir()
    assert tree_digest(preview) == before
    victim_still_fine(live)


def test_a_link_planted_on_disk_fails_the_build_and_is_never_followed(live: LiveDaemon) -> None:
    preview = _preview_dir(live)
    before = tree_digest(preview)
    link = live.tmp / "data" / "projects" / "mallory" / "m10"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / ".." / "previews" / preview.name)
    body = build(live, "mallory", "m10", "a page")
    assert body["success"] is False, body
    assert body["error"]["code"] == "build_failed", body
    assert "link" in body["error"]["message"] and "mallory/m10" in body["error"]["message"], body
    assert tree_digest(preview) == before  # no work/, no repo.git written into alice's preview
    assert live.preview(f"http://{preview.name}.localhost:{live.port}/").text == VICTIM_PAGE
    victim_still_fine(live)
