"""What `previewd serve` imports before it answers: a droplet (and the TCG guest) pays each module at every start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_serve_does_not_import_numpy_until_a_visual_diff_is_asked_for() -> None:
    probe = "import sys, daemon.cli.serve, daemon.wiring; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
