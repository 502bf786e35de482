"""Drill fixtures: killable daemons on a temp dir, and the closing check every drill ends with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.drills.support import Drill, consistency_problems, drill_config, other_pids, wait_no_leftovers


class Drills:
    """Makes drill daemons on one tmp dir and closes each drill with the shared invariants."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.made: list[Drill] = []

    def daemon(self, extra: str = "", *, env: dict[str, str] | None = None, **config: Any) -> Drill:
        """A started daemon (the drill generator, render off) with `extra` config appended."""
        d = Drill(self.tmp, drill_config(self.tmp, extra, **config))
        d.env = env
        self.made.append(d)
        return d.start()

    def finish(self, d: Drill, *, pg_schema: str | None = None, next_build: Callable[[], Any] | None = None,
               flush: bool = True) -> dict[str, Any]:
        """The drill's end: the next build succeeds, sync drains, the daemon stops, and every invariant holds."""
        nb: dict[str, Any] = next_build() if next_build else d.build("next", "after", "the next build")
        assert nb.get("success") is True and d.wait_status(nb["versionId"], ("deployed",)), nb
        if flush:
            res = d.sync_flush()
            assert not res.get("errors"), res
        d.stop()
        problems = consistency_problems(d.data_dir, pg_schema=pg_schema)
        assert problems == [], problems
        left = wait_no_leftovers(self.tmp, exclude=other_pids())
        assert left == [], left
        return nb


@pytest.fixture
def drills(tmp_path: Path) -> Iterator[Drills]:
    box = Drills(tmp_path)
    yield box
    for d in box.made:
        d.stop()
