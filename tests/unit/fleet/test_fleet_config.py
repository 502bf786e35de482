"""[fleet] config (issue 16): off by default and then inert; on, it refuses to start without Postgres and S3."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from daemon.core.config import ConfigError, load
from daemon.fleet.single import SingleDroplet
from daemon.runtime import Runtime
from sync.outbox import EnabledOutbox
from tests.support import make_config

PG = {"PREVIEWD_PG_DSN": "postgresql://postgres@127.0.0.1:5432/test"}


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> object:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return load(p, env=env or {})


def test_fleet_is_off_by_default_and_the_droplet_id_defaults_to_the_host_name() -> None:
    cfg = load(None, env={})
    assert cfg.fleet.enabled is False and cfg.fleet.lease_ttl_s == 15.0
    assert cfg.droplet_id == socket.gethostname()


@pytest.mark.parametrize(("text", "env", "needle"), [
    ("[fleet]\nenabled = true\n", {}, "[replica] backend"),
    ('[fleet]\nenabled = true\n[replica]\nbackend = "postgres"\n', PG, "[objects] backend"),
    ('[fleet]\nenabled = true\n[objects]\nbackend = "s3"\nbucket = "b"\n', {}, "[replica] backend"),
    ('[fleet]\nenabled = true\ndroplet_id = "a b"\n[replica]\nbackend = "postgres"\n[objects]\nbackend = "s3"\n'
     'bucket = "b"\n', PG, "[fleet] droplet_id"),
    ("[fleet]\nlease_ttl_s = 0.5\n", {}, "[fleet] lease_ttl_s"),
])
def test_a_fleet_without_postgres_or_s3_is_refused_naming_the_key(tmp_path: Path, text: str, env: dict[str, str],
                                                                    needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text, env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_complete_fleet_config_loads(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path, '[fleet]\nenabled = true\ndroplet_id = "drop-1"\nlease_ttl_s = 5\n[replica]\nbackend = "postgres"\n'
                  '[objects]\nbackend = "s3"\nbucket = "b"\n', PG)
    assert cfg.droplet_id == "drop-1" and cfg.fleet.lease_ttl_s == 5.0  # type: ignore[attr-defined]


def test_fleet_off_wires_nothing_of_it(tmp_path: Path) -> None:
    rt = Runtime(make_config(tmp_path, sandbox={"allow_unconfined": True}))
    try:
        assert isinstance(rt.fleet, SingleDroplet) and type(rt.outbox) is EnabledOutbox
        assert rt.fleet.jobs() == [] and [j["name"] for j in rt.jobs.describe()] == ["sync", "after-live"]
    finally:
        rt.close()
