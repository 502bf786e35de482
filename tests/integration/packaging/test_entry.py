"""The single-file entry point: tool dispatch, Python-version guard, and the daemon's own memory cap."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.packaging.conftest import REPO


@pytest.fixture
def entry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("previewd_entry_under_test",
                                                  REPO / "packaging" / "entry" / "previewd_entry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_cgroup(tmp: Path, controllers: str = "cpu memory pids") -> tuple[Path, Path]:
    fs = tmp / "cgroup"
    unit = fs / "system.slice" / "previewd.service"
    unit.mkdir(parents=True)
    (fs / "cgroup.controllers").write_text(controllers + "\n")
    (unit / "cgroup.controllers").write_text(controllers + "\n")
    (unit / "cgroup.subtree_control").write_text("")
    proc = tmp / "proc_self_cgroup"
    proc.write_text("0::/system.slice/previewd.service\n")
    return fs, proc


def test_cap_moves_into_daemon_leaf_and_caps_only_it(entry: ModuleType, tmp_path: Path) -> None:
    fs, proc = fake_cgroup(tmp_path)
    said = entry.cap_own_memory("768M", "1G", fs=fs, proc_cgroup=proc)
    unit = fs / "system.slice" / "previewd.service"
    leaf = unit / "daemon"
    assert "capped" in said
    assert (leaf / "cgroup.procs").read_text() == "0"
    assert (leaf / "memory.high").read_text() == "768M" and (leaf / "memory.max").read_text() == "1G"
    assert (unit / "cgroup.subtree_control").read_text() == "+memory +pids"
    # Nothing caps the unit itself, where the sandbox puts the build cgroups.
    assert not (unit / "memory.max").exists() and not (unit / "memory.high").exists()


def test_cap_without_memory_controller_or_cgroup2_runs_uncapped(entry: ModuleType, tmp_path: Path) -> None:
    fs, proc = fake_cgroup(tmp_path, controllers="pids")
    assert "no memory controller" in entry.cap_own_memory("768M", "1G", fs=fs, proc_cgroup=proc)
    assert not (fs / "system.slice" / "previewd.service" / "daemon").exists()
    hybrid = tmp_path / "hybrid"
    hybrid.mkdir()
    assert "no cgroup2 tree" in entry.cap_own_memory("768M", "1G", fs=hybrid, proc_cgroup=proc)
    said = entry.cap_own_memory("768M", "1G", fs=fs, proc_cgroup=tmp_path / "missing")
    assert said.startswith("could not cap daemon memory")


def test_python_version_guard(entry: ModuleType, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry, "BUILD", {"python": "2.7"})
    assert entry.main(["previewd", "--help"]) == 2
    err = capsys.readouterr().err
    assert "built for Python 2.7" in err and "make package PYTHON=python" in err


def test_dispatch(entry: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry, "BUILD", {})
    assert entry.main(["/opt/previewd/bin/previewd", "config-example"]) == 0
    assert "[paths]" in capsys.readouterr().out
    assert entry.main(["previewd", "build-info"]) == 0
    assert "source tree" in capsys.readouterr().out
    for argv in (["/usr/local/bin/daemonctl", "--help"], ["previewd.pyz", "daemonctl", "--help"]):
        with pytest.raises(SystemExit) as done:
            entry.main(argv)
        assert done.value.code == 0
        assert "usage: daemonctl" in capsys.readouterr().out
    assert entry._command(["--config", "serve", "doctor"]) == "doctor"
    assert entry._command(["--config", "x.toml", "serve"]) == "serve"
