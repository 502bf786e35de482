"""One writer (snapshots, window slides, prunes) alongside reader threads diffing and reading files."""

from __future__ import annotations

import threading
from pathlib import Path

from daemon.history import ProjectRepo
from tests.integration.history.history_support import Repos, write_files


def test_readers_alongside_one_writer_never_fail(repos: Repos, workspace: Path) -> None:
    repo = repos.new()
    repo.snapshot(workspace, "V0", None, "base")
    repo.snapshot(workspace, "V1", "V0", "same")
    done = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        # a fresh handle per thread, as the API threads would have
        mine = ProjectRepo(repo.path)
        try:
            while not done.is_set():
                assert mine.diff("V0", "V1", "files") == []
                assert mine.files("V0")["src/main.ts"].startswith(b"import")
                mine.diff("V0", sorted(mine.versions())[-1], "stat")
                reads[0] += 1
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        ids = [f"W{i:02d}" for i in range(12)]
        parent = "V1"
        for n, vid in enumerate(ids):
            write_files(workspace, {"src/extra.ts": f"export const n = {n}\n", "dist/app.js": f"/* {n} */\n" * 500})
            repo.snapshot(workspace, vid, parent, vid, exclude_dirs=["dist"])
            repo.snapshot_dist(workspace, vid, "dist")
            repo.slide_dist_window(ids[max(0, n - 2) : n + 1])
            repo.prune()
            parent = vid
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == []
    assert reads[0] > 0
    assert repo.dist_versions() == ["W09", "W10", "W11"]
