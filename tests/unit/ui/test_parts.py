"""The dashboard's pure parts: the side-by-side patch, branch lanes, window analytics, charts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from daemon.core import versions
from daemon.core.db import utcnow
from daemon.ops.buildstats import percentile, window_stats
from daemon.ui.charts import builds_bars, share_bars
from daemon.ui.patchview import side_by_side
from daemon.ui.queries import branch_lanes
from tests.support import in_process_daemon

PATCH = """diff --git a/index.html b/index.html
index 1111111..2222222 100644
--- a/index.html
+++ b/index.html
@@ -1,3 +1,4 @@
 <html>
-<h1>Blue</h1>
+<h1>Red</h1>
+<p>new</p>
 </html>
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..3333333
Binary files /dev/null and b/logo.png differ
"""


def test_side_by_side_pairs_removed_and_added_lines() -> None:
    files = side_by_side(PATCH)
    assert [f.path for f in files] == ["index.html", "logo.png"]
    rows = files[0].rows
    assert rows[0].kind == "hunk"
    assert (rows[1].kind, rows[1].old_no, rows[1].new_no) == ("same", 1, 1)
    assert (rows[2].old, rows[2].new, rows[2].old_no, rows[2].new_no) == ("<h1>Blue</h1>", "<h1>Red</h1>", 2, 2)
    assert (rows[3].old, rows[3].new, rows[3].new_no) == (None, "<p>new</p>", 3)
    assert (rows[4].kind, rows[4].old_no, rows[4].new_no) == ("same", 3, 4)
    assert files[1].binary and not files[1].rows


def _v(vid: str, parent: str | None) -> Any:
    return SimpleNamespace(version_id=vid, parent_version_id=parent)


def test_branch_lanes_fork_from_older_bases() -> None:
    items = [_v("A", None), _v("B", "A"), _v("C", "B"), _v("D", "A"), _v("E", "D"), _v("F", "OLDER")]
    lanes, count, forks = branch_lanes(items)
    assert lanes["A"] == lanes["B"] == lanes["C"] == 0
    assert lanes["D"] == lanes["E"] == 1 and forks == {"D"}
    assert lanes["F"] == 2 and count == 3  # parent not on this page: a new lane, not marked as a fork


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5], 0.95) == 5
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_window_stats_counts_buckets_reasons_and_durations(tmp_path: Path) -> None:
    with in_process_daemon(tmp_path):
        now = utcnow()
        for i, (status, reason, ms) in enumerate([("deployed", None, 1000), ("deployed", None, 3000),
                                                  ("failed", "timeout", 9000), ("queued", None, None)]):
            v = versions.create(None, user_id="u", project_id=f"p{i}", prompt="x", kind="new")
            versions.update(None, v.version_id, status=status, failure_reason=reason, build_duration_ms=ms,
                            created_at=now - timedelta(hours=i))
        old = versions.create(None, user_id="u", project_id="old", prompt="x", kind="new")
        versions.update(None, old.version_id, status="failed", failure_reason="cpu_limit",
                        created_at=now - timedelta(days=3))
        day = window_stats(24, now=now)
        assert (day.finished, day.failed, day.by_reason) == (3, 1, [("timeout", 1)])
        assert len(day.buckets) in (24, 25) and sum(b[1] for b in day.buckets) == 3
        assert day.buckets[-1][1] == 1  # the newest build lands in the last hour's bar
        assert day.durations["build"] == {"p50": 3000, "p95": 9000, "count": 3}
        week = window_stats(24 * 7, now=now)
        assert (week.finished, week.failed) == (4, 2) and dict(week.by_reason) == {"timeout": 1, "cpu_limit": 1}


def test_charts_are_labelled_svg_and_escape_labels() -> None:
    t = utcnow()
    svg = str(builds_bars([(t, 3, 1), (t, 0, 0)], title="Builds <per> hour"))
    assert svg.startswith("<svg") and 'role="img"' in svg and "Builds &lt;per&gt; hour" in svg
    bars = str(share_bars([("<b>", 2)], total=4, title="Why"))
    assert "&lt;b&gt;" in bars and "2 (50%)" in bars
