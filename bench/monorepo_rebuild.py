"""Benchmark: a workspace rebuild touching only the UI package vs a full workspace rebuild, through a real daemon.

The workspace is tests/fakes/workspace_generator.py's (a Vite app in apps/web, packages/ui and packages/theme,
each with its own build). After one first build, rebuilds alternate between a delta to packages/ui (only ui and
the app are built) and a delta to a root file (the whole `web...` is built); both skip the install. Prints the
medians of each kind's build step and whole build (buildDurationMs), and the UI-only / full ratios.
Run: .venv/bin/python bench/monorepo_rebuild.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.tiny_generator import generator_config  # noqa: E402
from tests.fakes.workspace_generator import GENERATOR  # noqa: E402
from tests.support.live import LiveDaemon  # noqa: E402

_BUILD_STEP = re.compile(r"build: ok \(exit 0, ([0-9.]+)s wall")


def _rebuild(d: LiveDaemon, prompt: str, first: bool = False) -> tuple[float, float, str]:
    """(build step seconds, whole build seconds, log) of one build."""
    path = "/build-preview-for-new-project" if first else "/rebuild-preview"
    body = d.post(path, {"userId": "u", "projectId": "ws", "prompt": prompt}).json()
    log = d.get(f"/versions/{body['versionId']}/log").text
    if body.get("success") is not True:
        raise SystemExit(f"build failed: {body}\n{log[-3000:]}")
    step = _BUILD_STEP.search(log)
    return float(step.group(1)) if step else 0.0, body["buildTime"] / 1000, log


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-monorepo-") as tmp:
        gen = Path(tmp) / "gen.py"
        gen.write_text(GENERATOR)
        d = LiveDaemon(Path(tmp), generator_config(gen, "[render]\nenabled = false\n")).start()
        try:
            _rebuild(d, "new", first=True)
            ui: list[tuple[float, float]] = []
            full: list[tuple[float, float]] = []
            for i in range(args.rounds):
                s, t, log = _rebuild(d, f"ui:banner {i}")
                assert "unchanged, not rebuilt: @demo/theme" in log and "install skipped" in log, log
                ui.append((s, t))
                s, t, log = _rebuild(d, f"root:notes {i}")
                assert "and its workspace dependencies" in log and "install skipped" in log, log
                full.append((s, t))
        finally:
            d.stop()
    for label, idx in (("build step", 0), ("whole build", 1)):
        u = statistics.median(x[idx] for x in ui)
        f = statistics.median(x[idx] for x in full)
        print(f"{label}: UI-only rebuild {u:.2f}s vs full workspace rebuild {f:.2f}s (median of {args.rounds}): "
              f"ratio {u / f:.2f}")


if __name__ == "__main__":
    main()
