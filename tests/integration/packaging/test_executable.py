"""The single-file build run from a clean directory by the system Python: CLIs, doctor, a real serve + SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from daemon.core.config import render_example
from tests.integration.packaging.conftest import SYSTEM_PYTHON, clean_env
from tests.support import free_port, wait_until, write_config

SECRET = "pkg-test-secret-0123456789abcdef"
NOBODY = 65534


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_system_python_alone_lacks_the_daemon(tmp_path: Path) -> None:
    proc = run([SYSTEM_PYTHON, "-c", "import daemon, litestar"], tmp_path, clean_env(tmp_path))
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


def test_help_and_dispatch_by_argument_and_argv0(pyz: Path, shiv_root: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path, SHIV_ROOT=str(shiv_root))
    proc = run([str(pyz), "--help"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert "usage: previewd" in proc.stdout and "serve" in proc.stdout and "doctor" in proc.stdout
    proc = run([str(pyz), "daemonctl", "--help"], tmp_path, env)
    assert proc.returncode == 0 and "usage: daemonctl" in proc.stdout and "status" in proc.stdout
    link = tmp_path / "daemonctl"
    link.symlink_to(pyz)
    proc = run([str(link), "--help"], tmp_path, env)
    assert proc.returncode == 0 and "usage: daemonctl" in proc.stdout
    proc = run([str(pyz), "build-info"], tmp_path, env)
    info = json.loads(proc.stdout)
    assert info["python"] == "{}.{}".format(*sys.version_info[:2]) and info["version"]
    ran_on = run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], tmp_path, env)
    assert ran_on.stdout.strip() == str(tuple(sys.version_info[:2]))
    proc = run([str(pyz), "no-such-command"], tmp_path, env)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_config_example_matches_and_validates(pyz: Path, shiv_root: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path, SHIV_ROOT=str(shiv_root))
    proc = run([str(pyz), "config-example"], tmp_path, env)
    assert proc.returncode == 0 and proc.stdout == render_example()
    example = tmp_path / "config.toml"
    example.write_text(proc.stdout)
    proc = run([str(pyz), "--config", str(example), "check-config"], tmp_path, env)
    assert proc.returncode == 0 and f"config ok ({example})" in proc.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 0\n")
    proc = run([str(pyz), "--config", str(bad), "check-config"], tmp_path, env)
    assert proc.returncode == 2 and "[server] port: must be >= 1" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reports_json(pyz: Path, shiv_root: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path, SHIV_ROOT=str(shiv_root), PREVIEWD_DATA_DIR=str(tmp_path / "data"))
    proc = run([str(pyz), "doctor"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["data_dir"] == str(tmp_path / "data")
    assert report["sandbox"]["layer"] in ("cgroup_v2", "cgroup_v1", "watchdog")
    # The netns probe runs the sandbox launcher by path: it must exist on disk, unpacked from the zip.
    assert "network_isolation" in report["sandbox"]["features"]
    assert report["generator"] == "template" and report["deployer"] == "local"


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"serve exited early with {proc.returncode}"
        try:
            return httpx.get(url, timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 120, interval=0.2, what=f"{url} answering 200")


def test_serve_as_unprivileged_user_then_sigterm(pyz: Path, shiv_root: Path, pkg_dir: Path, tmp_path: Path) -> None:
    # As the service runs: another uid, dependencies unpacked by root and only readable, data dir its own.
    work = pkg_dir / f"serve-{os.getpid()}-{time.monotonic_ns()}"
    data = work / "data"
    data.mkdir(parents=True)
    for p in (work, data):
        os.chown(p, NOBODY, NOBODY)
    port = free_port()
    config = write_config(work, port=port, paths={"pnpm_store": ""})  # data in work/data; the default store
    env = clean_env(work, SHIV_ROOT=str(shiv_root), PREVIEWD_HMAC_SECRET=SECRET)
    before = sorted(p.name for p in shiv_root.iterdir())
    proc = subprocess.Popen([str(pyz), "--config", str(config), "serve"], cwd=work, env=env, user=NOBODY,
                            group=NOBODY, extra_groups=[], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        status = run([str(pyz), "daemonctl", "--config", str(config), "status", "--json"], tmp_path, env)
        report = json.loads(status.stdout)
        assert report["daemon"] == "up", status.stdout + status.stderr
        # daemonctl status exits non-zero exactly when it reports alerts (e.g. no pnpm on this clean PATH).
        assert (status.returncode == 0) == (not report["alerts"]), status.stdout + status.stderr
        # A process of the daemon's uid (a build) cannot read the daemon's environment, where secrets live.
        peek = subprocess.run(["cat", f"/proc/{proc.pid}/environ"],
                              env=clean_env(work), user=NOBODY, group=NOBODY, extra_groups=[],
                              capture_output=True, text=True, timeout=30, check=False)
        assert peek.returncode != 0 and "Permission denied" in peek.stderr
        assert SECRET not in peek.stdout
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    # A child the daemon had just reaped may still be leaving; a zombie reparented to this container's init
    # (which reaps late, if ever) holds nothing. What must not exist is a live process of the session.
    survivors: list[str] = []

    def session_gone() -> bool:
        survivors[:] = [f"{p.pid} {p.info['status']} {' '.join(p.info['cmdline'] or [])}"
                        for p in psutil.process_iter(["status", "cmdline"])
                        if _sid(p.pid) == proc.pid and p.info["status"] != psutil.STATUS_ZOMBIE]
        return not survivors

    deadline = time.monotonic() + 15
    while not session_gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, f"processes of the daemon's session outlived it: {survivors}"
    assert (data / "state.db").is_file()
    assert sorted(p.name for p in shiv_root.iterdir()) == before
