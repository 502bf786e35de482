"""The README stays true: the two commands first, and every config key in its table."""

from pathlib import Path

from daemon.core import config

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_two_commands_come_first() -> None:
    head = README[: README.index("## API")]
    assert "make run" in head and "make test" in head


def test_every_config_key_is_in_the_table() -> None:
    for section in config.SECTIONS:
        for f in config.section_fields(section):
            assert f"`[{section}] {f.name}`" in README, f"[{section}] {f.name} missing from README"
