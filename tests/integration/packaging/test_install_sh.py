"""packaging/install.sh into a scratch root: lint, twice (second run changes nothing), upgrade/rollback, uninstall."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tomllib
import zipfile
from pathlib import Path

from daemon.project.toolchain import PINNED_PNPM
from tests.integration.packaging.conftest import REPO, clean_env

INSTALL = REPO / "packaging" / "install.sh"
SCRIPTS = [INSTALL, REPO / "packaging" / "build.sh"]


def host_env() -> dict[str, str]:
    """The machine's own settings (npm registry, CA bundle, HOME with its npm cache) minus the venv and previewd's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("PREVIEWD_")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["bash", str(INSTALL), "--root", str(root), "--no-systemctl", *args],
                          env=host_env(), capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stderr
    return proc


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with its type, mode, owner, size, mtime and content hash."""
    out: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        link = os.readlink(path) if path.is_symlink() else ""
        out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                            st.st_gid, st.st_size, st.st_mtime_ns, digest, link)
    return out


def ids(root: Path, user: str) -> tuple[int, int] | None:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == user:
            return int(parts[2]), int(parts[3])
    return None


def mode_owner(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_scripts_lint_clean() -> None:
    for script in SCRIPTS:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck:  # Debian package `shellcheck`; bash -n above runs everywhere.
        proc = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    proc = install(tmp_path / "root", "--bogus")
    assert proc.returncode != 0 and "unknown argument: --bogus" in proc.stderr
    proc = install(tmp_path / "root", "--purge")
    assert proc.returncode != 0 and "--purge goes with --uninstall" in proc.stderr
    not_a_build = tmp_path / "previewd.pyz"
    not_a_build.write_text("#!/bin/sh\n")
    proc = install(tmp_path / "root", "--exe", str(not_a_build))
    assert proc.returncode != 0 and "not a previewd build" in proc.stderr
    assert not (tmp_path / "root" / "opt").exists()


def test_install_twice_upgrade_rollback_uninstall(pyz: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = install(root, "--exe", str(pyz))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "curl -fsS http://127.0.0.1:8080/healthz" in first.stdout
    uid, gid = ids(root, "previewd") or (None, None)
    assert uid is not None

    env_file = root / "etc/previewd/env"
    assert mode_owner(env_file) == (0o600, 0, 0)
    secrets = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and line[0] != "#")
    assert len(secrets["PREVIEWD_HMAC_SECRET"]) == 64 and secrets["PREVIEWD_CF_WEBHOOK_SECRET"]
    assert secrets["PREVIEWD_HMAC_SECRET"] not in first.stdout + first.stderr
    assert mode_owner(root / "etc/previewd") == (0o750, 0, gid)
    assert mode_owner(root / "etc/previewd/config.toml") == (0o640, 0, gid)
    assert mode_owner(root / "var/lib/previewd") == (0o700, uid, gid)
    assert mode_owner(root / "opt/previewd/bin/previewd") == (0o755, 0, 0)
    assert (root / "opt/previewd/bin/previewd").read_bytes() == pyz.read_bytes()
    assert os.readlink(root / "opt/previewd/bin/daemonctl") == "previewd"
    assert (root / "etc/systemd/system/previewd.service").read_text() == (REPO / "systemd/previewd.service").read_text()
    assert os.access(root / "usr/local/bin/daemonctl", os.X_OK)
    unpacked = [p.name for p in (root / "opt/previewd/lib").iterdir() if p.is_dir()]
    assert len(unpacked) == 1 and unpacked[0].startswith("previewd_")

    config_path = root / "etc/previewd/config.toml"
    config = tomllib.loads(config_path.read_text())
    assert config["paths"]["data_dir"] == "/var/lib/previewd"
    assert config["paths"]["pnpm"] == "/opt/previewd/tools/node_modules/.bin/pnpm"
    pnpm = root / "opt/previewd/tools/node_modules/.bin/pnpm"
    node_dir = str(Path(config["paths"]["node"]).parent)
    version = subprocess.run([str(pnpm), "--version"], env={"PATH": f"{node_dir}:/usr/bin:/bin"},
                             capture_output=True, text=True, check=False)
    assert version.stdout.strip() == PINNED_PNPM
    check = subprocess.run([str(pyz), "--config", str(config_path), "check-config"],
                           env=clean_env(tmp_path, SHIV_ROOT=str(root / "opt/previewd/lib")),
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr

    before = snapshot(root)
    second = install(root, "--exe", str(pyz))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "no changes" in second.stdout
    assert snapshot(root) == before

    # An operator's edits to the config and secrets survive a reinstall.
    config_path.write_text(config_path.read_text() + "\n# edited by the operator\n")
    env_file.write_text(env_file.read_text() + "PREVIEWD_PG_DSN=postgresql://x\n")
    edited = (config_path.read_text(), env_file.read_text())
    assert install(root, "--exe", str(pyz)).returncode == 0
    assert (config_path.read_text(), env_file.read_text()) == edited

    # Upgrade keeps the old executable as previewd.prev; installing that one rolls back.
    newer = tmp_path / "newer.pyz"
    shutil.copy2(pyz, newer)
    with zipfile.ZipFile(newer, "a") as z:
        z.writestr("site-packages/upgrade_marker.txt", "newer")
    upgrade = install(root, "--exe", str(newer))
    assert upgrade.returncode == 0, upgrade.stderr
    bin_dir = root / "opt/previewd/bin"
    assert (bin_dir / "previewd").read_bytes() == newer.read_bytes()
    assert (bin_dir / "previewd.prev").read_bytes() == pyz.read_bytes()
    rollback = install(root, "--exe", str(bin_dir / "previewd.prev"))
    assert rollback.returncode == 0, rollback.stderr
    assert (bin_dir / "previewd").read_bytes() == pyz.read_bytes()
    assert (bin_dir / "previewd.prev").read_bytes() == newer.read_bytes()

    removed = install(root, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    for gone in ("opt/previewd", "etc/systemd/system/previewd.service", "usr/local/bin/daemonctl"):
        assert not (root / gone).exists(), gone
    assert (config_path.read_text(), env_file.read_text()) == edited
    assert (root / "var/lib/previewd").is_dir() and ids(root, "previewd") is not None

    purged = install(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/previewd").exists() and not (root / "var/lib/previewd").exists()
    assert ids(root, "previewd") is None
