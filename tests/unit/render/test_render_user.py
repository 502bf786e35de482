"""Who Chromium runs as: `[render] user` is checked at load, and by default it is a user of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.core.config import ConfigError
from daemon.project import isolation, renderbox
from tests.support import make_config


def test_an_unknown_render_user_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[render\] user: no such user"):
        make_config(tmp_path, '[render]\nuser = "no-such-user-here"\n')


@pytest.mark.skipif(os.geteuid() != 0, reason="a daemon that is not root keeps its own user")
def test_root_renders_as_a_user_of_its_own_not_root_nor_the_build_user(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    if not isolation.confinement(cfg).confined:
        pytest.skip("no bubblewrap here")
    user = renderbox.render_user(cfg)
    assert user not in (None, "root", isolation.code_user(cfg))
    ids = renderbox.render_ids(cfg)
    assert ids is not None and ids[0] != 0
    assert renderbox.render_user(make_config(tmp_path, '[render]\nuser = "nobody"\n')) == "nobody"
