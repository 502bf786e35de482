"""daemonctl's ops verbs that need no daemon: config check, doctor, rendering, and leaving other verbs alone."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from daemon.cli import daemonctl
from daemon.cli import daemonctl_ops as ctl_ops
from tests.support import make_config


def _args(*argv: str) -> argparse.Namespace:
    return daemonctl.parser().parse_args(list(argv))


def test_config_check_and_doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(tmp_path, "[retention]\nnightly_at = \"04:15\"\n")
    assert ctl_ops.dispatch(_args("config", "check"), None, cfg) == 0
    assert "config ok" in capsys.readouterr().out
    assert ctl_ops.dispatch(_args("doctor"), None, cfg) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data_dir"] == str(cfg.data_dir) and "sandbox" in report


def test_bad_nightly_time_is_a_config_error(tmp_path: Path) -> None:
    from daemon.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"\[retention\] nightly_at"):
        make_config(tmp_path, "[retention]\nnightly_at = \"25:00\"\n")


def test_other_commands_are_not_ours(tmp_path: Path) -> None:
    ns = argparse.Namespace(cmd="build")
    assert ctl_ops.dispatch(ns, None, make_config(tmp_path)) is None


def test_render_cleanup_and_offline_status() -> None:
    report = {"dryRun": True, "ok": False, "steps": [
        {"name": "keep_latest", "ok": True, "counts": {"rows": 2}, "actions": ["delete u/p X"], "error": None},
        {"name": "prune_pnpm_store", "ok": False, "counts": {}, "actions": [], "error": "RuntimeError: boom"}]}
    text = ctl_ops.render_cleanup(report)
    assert "dry run" in text and "rows=2" in text and "FAILED" in text and "boom" in text and "delete u/p X" in text
    down = ctl_ops.render_status({"daemon": "down", "url": "http://x", "reason": "ConnectError", "dataDir": "/d",
                                  "versions": {"failed": 1}, "sync": {"kv": {"pending": 3, "dead": 0,
                                                                             "oldest_age_s": 9.5}}})
    assert "DOWN" in down and "failed 1" in down and "kv" in down


def test_offline_status_without_state(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    out = ctl_ops.offline_status(cfg)
    assert out["daemon"] == "down" and "no state database" in out["stateError"]


def test_doctor_says_when_chromium_is_missing(tmp_path: Path) -> None:
    from daemon.cli.previewd import doctor_report
    from daemon.core.config import load

    p = tmp_path / "c.toml"
    p.write_text(f'[paths]\ndata_dir = "{tmp_path / "d"}"\n[render]\nchromium = "no-such-chromium"\n')
    report = doctor_report(load(p, env={}))
    assert "not found" in report["render"]["chromium"] and "unavailable" in report["render"]["chromium"]
