"""Config: defaults, file, environment, one-line errors, and config.example.toml documenting every key."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from daemon.core import config
from daemon.core.config import ConfigError, load

REPO = Path(__file__).resolve().parents[3]


def test_defaults_need_no_file() -> None:
    cfg = load(None, env={})
    assert cfg.server.port == 8080 and cfg.generator.backend == "template" and cfg.deploy.backend == "local"
    assert cfg.limits.cpu_seconds == 300 and cfg.limits.memory_mb == 1024 and cfg.limits.output_mb == 100
    assert cfg.rate_limits.per_ip_per_hour == 100
    assert cfg.rate_limits.new_projects_per_user_per_hour == 5
    assert cfg.rate_limits.rebuilds_per_project_per_hour == 20


def test_file_and_env_var(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[server]\nport = 9000\npreview_domain = "preview.example.com"\n[generator]\nbackend = "command"\n'
                 'command = ["python3", "gen.py"]\n')
    cfg = load(None, env={"PREVIEWD_CONFIG": str(p)})
    assert cfg.server.port == 9000 and cfg.generator.command == ["python3", "gen.py"]
    assert cfg.source == str(p)


def test_example_file_documents_every_key_with_its_default() -> None:
    text = (REPO / "config.example.toml").read_text()
    assert text == config.render_example(), "regenerate: previewd config-example > config.example.toml"
    data = tomllib.loads(text)
    for section in config.SECTIONS:
        for f in config.section_fields(section):
            assert f.name in data[section], f"[{section}] {f.name} missing from config.example.toml"
            assert f"# {f.metadata['help']}" in text
    # and the example loads as a valid config
    cfg = load(REPO / "config.example.toml", env={})
    assert cfg.server.port == 8080


@pytest.mark.parametrize(("toml", "needle"), [
    ("[server]\nport = \"abc\"\n", "[server] port: must be an integer"),
    ("[server]\nport = 70000\n", "[server] port: must be <= 65535"),
    ("[server]\nprot = 1\n", "[server] prot: unknown key"),
    ("[sever]\nport = 1\n", "[sever]: unknown section"),
    ("[generator]\nbackend = \"gpt\"\n", "[generator] backend: must be one of template, command, claude"),
    ("[generator]\nbackend = \"command\"\n", "[generator] command: required"),
    ("[generator]\ncommand = \"gen.py\"\n", "[generator] command: must be a list of strings"),
    ("[limits]\nmemory_mb = 0\n", "[limits] memory_mb: must be >= 16"),
    ("[limits]\ncpu_seconds = true\n", "[limits] cpu_seconds: must be a number"),
    ("[sandbox]\nbuild_network = \"yes\"\n", "[sandbox] build_network: must be true or false"),
    ("[deploy]\nbackend = \"cloudflare\"\n", "[deploy] cf_account_id: required"),
    ("[replica]\nbackend = \"postgres\"\n", "PREVIEWD_PG_DSN: required"),
    ("[server]\npreview_domain = \"bad domain\"\n", "[server] preview_domain"),
    ("server = 1\n", "[server]: must be a table"),
    ("[server\n", "not valid TOML"),
])
def test_bad_values_give_one_line_naming_the_key(tmp_path: Path, toml: str, needle: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load(p, env={})
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml", env={})


def test_secrets_come_from_env_and_never_show(tmp_path: Path) -> None:
    cfg = load(None, env={"PREVIEWD_HMAC_SECRET": "s3cr3t-value", "CLOUDFLARE_API_TOKEN": "tok-123456"})
    assert cfg.secrets.hmac_secret == "s3cr3t-value"
    assert "s3cr3t" not in repr(cfg) and "tok-123456" not in repr(cfg)
    assert set(cfg.secrets.values()) == {"s3cr3t-value", "tok-123456"}


def test_generated_hmac_secret_is_kept_private_and_stable(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    cfg = load(p, env={})
    s1 = config.ensure_hmac_secret(cfg)
    path = config.hmac_secret_path(cfg)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(s1) == 64
    assert config.ensure_hmac_secret(load(p, env={})) == s1


def test_cli_reports_config_error_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    p = tmp_path / "c.toml"
    p.write_text("[limits]\npids = -1\n")
    out = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(p), "check-config"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "previewd: config error: [limits] pids: must be >= 8, got -1"
