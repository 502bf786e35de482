"""Config is one table per section (msgspec Structs): the bounds and choices the documentation shows are the ones
msgspec enforces, each refusal a line naming the key."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from daemon.core import config
from daemon.core.config import ConfigError, load

KEYS = [(section, key) for section in config.SECTIONS for key in config.section_fields(section)]


def _refusal(tmp_path: Path, section: str, name: str, value: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(f"[{section}]\n{name} = {value}\n")
    with pytest.raises(ConfigError) as exc:
        load(p, env={})
    return str(exc.value)


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k.name}" for s, k in KEYS])
def test_each_documented_rule_is_the_enforced_one(tmp_path: Path, section: str, key: config.Key) -> None:
    meta = key.metadata
    assert meta["help"], f"[{section}] {key.name} has no help text"
    where = f"[{section}] {key.name}: "
    if meta["lo"] is not None:
        assert _refusal(tmp_path, section, key.name, repr(meta["lo"] - 1)).startswith(f"{where}must be >= {meta['lo']}")
    if meta["hi"] is not None:
        assert _refusal(tmp_path, section, key.name, repr(meta["hi"] + 1)).startswith(f"{where}must be <= {meta['hi']}")
    if meta["choices"]:
        assert _refusal(tmp_path, section, key.name, '"nope"') == \
            f"{where}must be one of {', '.join(meta['choices'])}, got 'nope'"
    wrong = "[1]" if isinstance(key.default, str) else '"x"'
    assert _refusal(tmp_path, section, key.name, wrong).startswith(where + "must be ")


def test_sections_are_structs_and_a_loaded_value_keeps_its_type(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[server]\nwait_timeout_s = 5\n[plans.free]\nbuilds = 3\n")
    cfg = load(p, env={})
    assert isinstance(cfg, msgspec.Struct) and isinstance(cfg.server, msgspec.Struct)
    assert cfg.server.wait_timeout_s == 5.0 and isinstance(cfg.server.wait_timeout_s, float)
    assert cfg.plans["free"].builds == 3 and cfg.plans["free"].storage_bytes == 0
    assert config.Config().build.allow_build_scripts is not config.Config().build.allow_build_scripts
