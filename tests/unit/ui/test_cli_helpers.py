"""`previewd hash-password` and `daemonctl ui-token`: what they print signs an operator in."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from daemon.cli import daemonctl, previewd
from daemon.ui.access import check_password, check_token
from tests.support import TEST_SECRET


def test_hash_password_prints_a_config_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))
    assert previewd.main(["hash-password"]) == 0
    line = capsys.readouterr().out.strip()
    m = re.fullmatch(r'password_hash = "(scrypt\$[^"]+)"', line)
    assert m and check_password(m.group(1), "s3cret pass") and not check_password(m.group(1), "s3cret")


def test_hash_password_refuses_an_empty_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert previewd.main(["hash-password"]) == 2


def test_ui_token_is_signed_with_the_daemons_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path / "d"}"\n')
    monkeypatch.setenv("PREVIEWD_HMAC_SECRET", TEST_SECRET)
    assert daemonctl.main(["ui-token", "--ttl", "120", "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert check_token(TEST_SECRET, out.out.strip()) and "/ui/sign-in" in out.err
    assert daemonctl.main(["ui-token", "--ttl", "0", "--config", str(cfg)]) == 2
