"""Every command line the docs show parses as documented; `--config` goes before or after the subcommand (issue 13,
item 5); the cheap ones run for real as subprocesses of the installed console scripts."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from daemon.cli import daemonctl, previewd
from tests.support import write_config

REPO = Path(__file__).resolve().parents[3]
CONFIG = "/etc/previewd/config.toml"  # stands for FILE / "$tmp" in the docs; parsing never opens it
PLACEHOLDERS = {"FILE", "$tmp"}
PARSERS = {"previewd": previewd.parser, "daemonctl": daemonctl.parser}

# (file, a command line exactly as that file shows it)
DOCUMENTED = [
    ("config.example.toml", "previewd serve --config FILE"),
    ("Makefile", "$(BIN)/previewd serve"),
    ("README.md", "previewd serve"),
    ("README.md", '.venv/bin/daemonctl build alice bakery "A bakery with a menu and opening hours"'),
    ("README.md", '.venv/bin/daemonctl rebuild alice bakery "Make the headline say Fresh bread every morning"'),
    ("README.md", ".venv/bin/daemonctl versions alice bakery"),
    ("README.md", "daemonctl diff A B --visual out.png"),
    ("README.md", "daemonctl status"),
    ("README.md", "previewd doctor"),
    ("README.md", "previewd check-config"),
    ("README.md", "previewd config-example"),
    ("README.md", "previewd build-info"),
    ("packaging/README.md", "daemonctl status"),
    ("packaging/README.md", "previewd build-info"),
    ("systemd/previewd.service", "/opt/previewd/bin/previewd check-config"),
    ("systemd/previewd.service", "/opt/previewd/bin/previewd serve"),
    ("packaging/install.sh", 'run_previewd --config "$tmp" check-config'),
    ("packaging/install.sh", "run_previewd config-example"),
    ("packaging/install.sh", "run_previewd build-info"),
]


def _tool(program: str) -> str:
    name = Path(program).name
    return "previewd" if name in ("previewd", "run_previewd") else name


def _argv(line: str) -> tuple[str, list[str]]:
    """The tool and its arguments, placeholders replaced by a config path."""
    program, *args = shlex.split(line)
    return _tool(program), [CONFIG if a in PLACEHOLDERS else a for a in args]


def _subcommand(args: list[str]) -> str:
    """The first word that is neither an option nor the value of --config/--url."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("--config", "--url"):
            skip = True
        elif not a.startswith("-"):
            return a
    raise AssertionError(f"no subcommand in {args}")


@pytest.fixture(scope="module")
def entry() -> ModuleType:
    """The single-file build's entry point (packaging/entry), which picks the tool and spots `serve`."""
    spec = importlib.util.spec_from_file_location("previewd_entry_for_command_lines",
                                                  REPO / "packaging" / "entry" / "previewd_entry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("source", "line"), DOCUMENTED, ids=[f"{s}: {line}" for s, line in DOCUMENTED])
def test_documented_command_line_parses(source: str, line: str, entry: ModuleType) -> None:
    assert line in (REPO / source).read_text(), f"{source} no longer shows {line!r}: update DOCUMENTED"
    tool, args = _argv(line)
    cmd = _subcommand(args)
    if tool == "previewd":
        # the packaged executable reads the subcommand the same way (it makes `serve` non-dumpable)
        assert entry._command(args) == cmd
    if cmd == "build-info":  # answered by the packaged entry point before `previewd` parses anything
        return
    ns = PARSERS[tool]().parse_args(args)
    assert ns.cmd == cmd
    assert ns.config == (CONFIG if "--config" in args else None)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _minimal(name: str, parser: argparse.ArgumentParser) -> list[str]:
    """A subcommand with a placeholder for each positional argument (and its first sub-subcommand, if any)."""
    argv = [name]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub_name, sub = next(iter(action.choices.items()))
            argv += _minimal(sub_name, sub)
        elif not action.option_strings:
            argv.append("x")
    return argv


def _commands(tool: str) -> list[list[str]]:
    return [_minimal(name, p) for name, p in _subparsers(PARSERS[tool]()).items()]


@pytest.mark.parametrize(("tool", "command"), [(t, c) for t in PARSERS for c in _commands(t)],
                         ids=[f"{t} {' '.join(c)}" for t in PARSERS for c in _commands(t)])
def test_config_goes_before_or_after_the_subcommand(tool: str, command: list[str]) -> None:
    parse = PARSERS[tool]().parse_args
    before = parse(["--config", CONFIG, *command])
    after = parse([*command, "--config", CONFIG])
    neither = parse(command)
    assert before.cmd == after.cmd == neither.cmd == command[0]
    assert before.config == after.config == CONFIG
    assert neither.config is None
    assert vars(before) == vars(after)


def test_the_later_config_wins() -> None:
    assert previewd.parser().parse_args(["--config", "a.toml", "serve", "--config", "b.toml"]).config == "b.toml"
    assert daemonctl.parser().parse_args(["--config", "a.toml", "status", "--config", "b.toml"]).config == "b.toml"


@pytest.mark.parametrize("argv", [["--url", "http://h:1", "status"], ["status", "--url", "http://h:1"],
                                  ["config", "--url", "http://h:1", "check"], ["config", "check", "--url", "http://h:1"]])
def test_daemonctl_url_goes_anywhere_too(argv: list[str]) -> None:
    assert daemonctl.parser().parse_args(argv).url == "http://h:1"


def test_readme_names_every_daemonctl_verb() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## daemonctl"):readme.index("`previewd doctor` prints")]
    verbs = {span.split()[0] for span in re.findall(r"`([^`]+)`", section)}
    assert verbs == set(_subparsers(daemonctl.parser()))


def test_readme_names_every_previewd_command() -> None:
    readme = (REPO / "README.md").read_text()
    listed = re.search(r"`previewd ([a-z|-]+)`, and `daemonctl \.\.\.`", readme)
    assert listed, "README lost its `previewd serve|doctor|...` line"
    assert set(listed.group(1).split("|")) == set(_subparsers(previewd.parser())) | {"build-info"}


# -- the cheap ones, for real -----------------------------------------------------------------------------------

def _run(tool: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script (`make setup`), importing this tree's code, outside any previewd settings."""
    exe = Path(sys.executable).parent / tool
    assert exe.is_file(), f"{exe} missing: run `make setup`"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEWD_")}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
                          env={**clean, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.parametrize("argv", [["--config", "{F}", "check-config"], ["check-config", "--config", "{F}"]])
def test_previewd_check_config_runs(tmp_path: Path, argv: list[str]) -> None:
    f = write_config(tmp_path)
    out = _run("previewd", *[a.format(F=f) for a in argv], cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"config ok ({f})\n", "")


def test_previewd_check_config_from_the_environment(tmp_path: Path) -> None:
    f = write_config(tmp_path)
    out = _run("previewd", "check-config", cwd=tmp_path, env={"PREVIEWD_CONFIG": str(f)})
    assert (out.returncode, out.stdout) == (0, f"config ok ({f})\n")


def test_previewd_check_config_after_the_subcommand_reports_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 0\n")
    out = _run("previewd", "check-config", "--config", str(bad), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "previewd: config error: [server] port: must be >= 1, got 0"


def test_previewd_config_example_prints_the_example(tmp_path: Path) -> None:
    out = _run("previewd", "config-example", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == (REPO / "config.example.toml").read_text()


@pytest.mark.parametrize("argv", [["--config", "{F}", "config", "check"], ["config", "check", "--config", "{F}"],
                                  ["config", "--config", "{F}", "check"]])
def test_daemonctl_config_check_runs(tmp_path: Path, argv: list[str]) -> None:
    f = write_config(tmp_path)
    out = _run("daemonctl", *[a.format(F=f) for a in argv], cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, f"config ok ({f}); data dir {tmp_path / 'data'}\n"), out.stderr
