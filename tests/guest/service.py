"""The packaged service in a guest with systemd as PID 1: the unit from systemd/ as it ships, the real executable.

On the host: packaging/build.sh makes the executable and packaging/install.sh --root lays out /opt/previewd,
/etc/previewd and the previewd user into the io share (pnpm copied from the checkout's .tools, so nothing is
fetched). In the guest, a oneshot driver unit (the only thing `guest.target` pulls in besides basic.target) adds
the user, binds /opt/previewd, installs the unit unchanged, starts it, checks it, stops it and writes facts back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.fakes.tiny_generator import write_generator
from tests.guest.harness import REPO
from tests.guest.vm import IO_MOUNT, Boot, GuestError, Launcher

CMDLINE = "previewd.init=systemd systemd.unit=guest.target systemd.show_status=0"

DRIVER_UNIT = f"""[Unit]
Description=previewd guest test driver
After=basic.target
[Service]
Type=oneshot
StandardOutput=append:{IO_MOUNT}/run.log
StandardError=inherit
ExecStart=/bin/sh {IO_MOUNT}/run.sh
ExecStopPost=/bin/sh -c 'echo $EXIT_STATUS > {IO_MOUNT}/exit_code; sync; systemctl poweroff --force --force'
"""

TARGET_UNIT = """[Unit]
Description=previewd guest test target
Requires=guest-driver.service
After=guest-driver.service
"""

# The driver: lays out what install.sh laid out on the host, then tests/guest/service_driver.py drives the service.
DRIVER = r"""set -x
# The user as install.sh makes it on a droplet (the staged passwd's ids are the empty staging root's).
useradd --system --user-group --home-dir /var/lib/previewd --no-create-home --shell /usr/sbin/nologin previewd
mkdir -p /opt/previewd && mount --bind {io}/pkg/opt/previewd /opt/previewd
mkdir -p /etc/previewd && cp -a {io}/pkg/etc/previewd/. /etc/previewd/
chown root:previewd /etc/previewd /etc/previewd/config.toml && chmod 0750 /etc/previewd
chmod 0640 /etc/previewd/config.toml && chown root:root /etc/previewd/env && chmod 0600 /etc/previewd/env
install -m 0644 {io}/previewd.service /etc/systemd/system/previewd.service
cmp -s {io}/previewd.service {repo}/systemd/previewd.service && echo yes > {io}/unit_as_shipped
systemctl daemon-reload
cd {repo} && PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m tests.guest.service_driver {io}
"""

# What the guest's config changes from install.sh's (the unit itself stays as shipped): the generator is a tiny
# dependency-free one (the guest has no registry), builds are killed at 256 MiB (a hog is stopped fast under TCG),
# and a stop gives a running build 5 s before failing it `interrupted` (not the droplet's 300 s).
CONFIG = {"generator": {"backend": "command"}, "build": {"audit": "off"}, "render": {"enabled": False},
          "limits": {"memory_mb": 256}, "server": {"shutdown_grace_s": 5.0}}

# The generator's projects, by prompt. "hostile" runs HOSTILE (each attempt prints `hostile:<name>=yes|no`) and
# leaves links to secrets in its output; "hog" allocates past the memory cap; "slow" sleeps until stopped.
HOSTILE = r"""V=/var/lib/previewd/projects/alice/site
D=/var/lib/previewd
t() { if sh -c "$2" >/dev/null 2>&1; then echo "hostile:$1=yes"; else echo "hostile:$1=no"; fi; }
t read_other_project "cat $V/work/index.html"
t write_other_project "echo pwned > $V/work/index.html"
t write_other_repo "echo junk > $V/repo.git/HEAD"
t list_projects "ls $D/projects | grep -q alice"
t read_data_dir "grep -q canary $D/canary.txt"
t read_outside "grep -q canary /root/outside.txt"
t read_secrets "cat /etc/previewd/env"
t shim_other_project "mkdir -p $V/work/node_modules/.bin && echo x > $V/work/node_modules/.bin/mkdir"
t poison_cache "mkdir -p $D/cache && echo p > $D/cache/poison"
t poison_store "mkdir -p $D/pnpm-store && echo p > $D/pnpm-store/poison"
t poison_audit_cache "mkdir -p $D/audit-cache && echo p > $D/audit-cache/poison"
t plant_link "ln -s ../../previews $D/projects/mallory/m9"
t net_daemon_api "bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080'"
t see_daemon "ps ax | grep -v grep | grep -q 'previewd serve'"
mkdir -p dist && echo '<h1>hostile</h1>' > dist/index.html
ln -s /etc/shadow dist/shadow.txt; ln -s $D/canary.txt dist/canary.txt; ln -s $D dist/data
ln -s /root/outside.txt dist/outside.txt
"""
GENERATOR = """
p = req["prompt"]
files = {"index.html": "<h1>alice's page</h1>"}
build = "mkdir -p dist && cp index.html dist/"
if p == "hostile":
    files["attack.sh"] = HOSTILE
    build = "sh attack.sh"
elif p == "hog":
    build = "node -e 'const a = []; for (;;) a.push(Buffer.alloc(16 << 20, 1))'"
elif p == "slow":
    build = "echo waiting; sleep 3600"
"""


# What the executable is made of: an unchanged set reuses the last build (build.sh takes 2-4 min, mostly pip).
PACKAGE_INPUTS = ("daemon", "sandbox", "sync", "pyproject.toml", "requirements.lock", "packaging/entry",
                  "packaging/build.sh")
PYZ_CACHE = REPO / "build" / "guest-pyz"


def package_key(repo: Path = REPO) -> str:
    """A digest of every file build.sh packs (paths and contents; caches and bytecode left out)."""
    digest = hashlib.sha256()
    for top in PACKAGE_INPUTS:
        root = repo / top
        files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root])
                       if p.is_file() and "__pycache__" not in p.parts)
        for f in files:
            digest.update(str(f.relative_to(repo)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def built_pyz() -> Path:
    """The executable for the checkout as it is: the cached one when its inputs are unchanged, else built now."""
    pyz = PYZ_CACHE / f"previewd-{package_key()}.pyz"
    if not pyz.exists():
        PYZ_CACHE.mkdir(parents=True, exist_ok=True)
        for old in PYZ_CACHE.glob("previewd-*"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        tmp = PYZ_CACHE / "previewd.pyz.new"
        _run([str(REPO / "packaging" / "build.sh"), str(tmp)], PYTHON=str(Path(sys.base_prefix) / "bin" / "python3"))
        tmp.rename(pyz)
    return pyz


def stage_package(dest: Path) -> Path:
    """Lay out an install of the executable under `dest/pkg` (install.sh --root); returns dest."""
    pyz = dest / "previewd.pyz"
    dest.mkdir(parents=True, exist_ok=True)
    cached = built_pyz()
    shutil.copy(cached, pyz)
    opt = dest / "pkg" / "opt" / "previewd"
    tools = REPO / ".tools"
    if tools.is_dir():  # install.sh keeps a pnpm of the right version: no npm fetch
        shutil.copytree(tools, opt / "tools", symlinks=True)
    # install.sh unpacks and byte-compiles only when lib/ lacks this build (1.5-3 min here): the last unpack
    # of the same executable is reused (copy2 keeps the sources' mtimes, so its bytecode stays valid).
    lib_cache = cached.with_suffix(".lib")
    if lib_cache.is_dir():
        shutil.copytree(lib_cache, opt / "lib", symlinks=True)
    _run([str(REPO / "packaging" / "install.sh"), "--root", str(dest / "pkg"), "--no-systemctl", "--exe", str(pyz)])
    if not lib_cache.is_dir():
        shutil.copytree(opt / "lib", lib_cache.with_suffix(".new"), symlinks=True)
        lib_cache.with_suffix(".new").rename(lib_cache)
    return dest


def _run(argv: list[str], **env: str) -> None:
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env={**os.environ, **env}, timeout=900,
                          check=False)
    if proc.returncode != 0:
        raise GuestError(f"{Path(argv[0]).name} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def guest_config(installed: str) -> str:
    """install.sh's config with CONFIG merged over it key by key, and the generator pointed at the io share."""
    from tests.support import toml_text

    merged = tomllib.loads(installed)
    for name, keys in CONFIG.items():
        merged.setdefault(name, {}).update(keys)
    merged["generator"]["command"] = ["/usr/bin/python3", f"{IO_MOUNT}/gen.py"]
    return toml_text(merged)


def boot_service(launcher: Launcher, staged: Path, timeout: float = 600.0) -> tuple[Boot, dict[str, Any]]:
    """Boot the systemd guest that installs the unit and runs tests/guest/service_driver.py; the facts it wrote."""

    def prepare(io_dir: Path) -> None:
        units = io_dir / "root" / "etc" / "systemd" / "system"
        units.mkdir(parents=True)
        (units / "guest-driver.service").write_text(DRIVER_UNIT)
        (units / "guest.target").write_text(TARGET_UNIT)
        shutil.copy(REPO / "systemd" / "previewd.service", io_dir / "previewd.service")
        (staged / "pkg").rename(io_dir / "pkg")
        config = io_dir / "pkg" / "etc" / "previewd" / "config.toml"
        config.write_text(guest_config(config.read_text()))
        gen = write_generator(io_dir, f"HOSTILE = {HOSTILE!r}\n" + GENERATOR)
        gen.chmod(0o644)

    script = DRIVER.format(io=IO_MOUNT, repo=REPO)
    boot = launcher.boot(script, timeout, extra_cmdline=CMDLINE, prepare=prepare)
    facts_file = boot.io_dir / "facts.json"
    if not facts_file.exists():
        raise GuestError(f"the systemd guest wrote no facts (driver exit {boot.exit_code}); its output:\n"
                         f"{boot.log()[-3000:]}\nconsole tail:\n{boot.console[-3000:]}")
    facts: dict[str, Any] = json.loads(facts_file.read_text())
    facts["unit_as_shipped"] = (boot.io_dir / "unit_as_shipped").exists()
    return boot, facts
