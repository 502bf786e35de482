"""100 concurrent build requests with the default caps: caps and dedup hold exactly, nothing lost or doubled."""

from __future__ import annotations

import asyncio

from tests.drills import burst
from tests.drills.conftest import Drills


def test_burst_caps_dedup_and_consistency(drills: Drills) -> None:
    d = drills.daemon()
    setup_ids = burst.setup(d.base)
    burst.seed_caps(d.data_dir)
    reqs = burst.plan()
    asyncio.run(burst.fire(d.base, reqs))
    counts, problems = burst.expected_problems(reqs)
    assert problems == [], problems
    # 17 accepted = u0's 5 + one per other new project (11) + r1's last rebuild; at least 4 + 8 + 5 refused by a
    # cap; r1's 7 duplicates are 409 while its rebuild is in flight and 429 after it (the cap is then full).
    assert counts["202"] == 17 and counts["409"] + counts["429"] == 83 and counts["429"] >= 17, counts
    accepted = burst.accepted_ids(reqs)
    finished = burst.wait_terminal(d.base, accepted)
    assert burst.rows_problems(d.data_dir, accepted, setup_ids, finished) == []
    assert all(v["status"] == "deployed" for v in finished.values()), finished
    drills.finish(d)
