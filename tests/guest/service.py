"""The packaged service in a guest with systemd as PID 1: the unit from systemd/ as it ships, the real executable.

On the host: packaging/build.sh makes the executable and packaging/install.sh --root lays out /opt/previewd,
/etc/previewd and the previewd user into the io share (pnpm copied from the checkout's .tools, so nothing is
fetched). In the guest, a oneshot driver unit (the only thing `guest.target` pulls in besides basic.target) adds
the user, binds /opt/previewd, installs the unit unchanged, starts it, checks it, stops it and writes facts back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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

# Facts go to facts.txt as "key value" lines; everything else the driver prints goes to run.log.
DRIVER = r"""set -x
F={io}/facts.txt
fact() {{ echo "$1 $2" >> $F; }}
# The user as install.sh makes it on a droplet (the staged passwd's ids are the empty staging root's).
useradd --system --user-group --home-dir /var/lib/previewd --no-create-home --shell /usr/sbin/nologin previewd
mkdir -p /opt/previewd && mount --bind {io}/pkg/opt/previewd /opt/previewd
mkdir -p /etc/previewd && cp -a {io}/pkg/etc/previewd/. /etc/previewd/
chown root:previewd /etc/previewd /etc/previewd/config.toml && chmod 0750 /etc/previewd
chmod 0640 /etc/previewd/config.toml && chown root:root /etc/previewd/env && chmod 0600 /etc/previewd/env
install -m 0644 {io}/previewd.service /etc/systemd/system/previewd.service
fact unit_as_shipped $(cmp -s {io}/previewd.service {repo}/systemd/previewd.service && echo yes || echo no)
systemctl daemon-reload
t0=$(cut -d' ' -f1 /proc/uptime)
systemctl start previewd; fact start_rc $?
for i in $(seq 1 240); do
  curl -fsS http://127.0.0.1:8080/healthz > {io}/healthz.json 2>/dev/null && break
  systemctl -q is-failed previewd && break
  sleep 1
done
fact healthz_after $(awk -v t0=$t0 '{{print $1 - t0}}' /proc/uptime)
journalctl -u previewd -o cat --no-pager > {io}/journal.txt
fact active $(systemctl is-active previewd)
PID=$(systemctl show -p MainPID --value previewd)
fact main_user $(ps -o user= -p $PID)
fact main_cgroup $(cut -d: -f3 /proc/$PID/cgroup)
fact subtree_control "$(tr ' ' ',' < /sys/fs/cgroup/system.slice/previewd.service/cgroup.subtree_control)"
fact delegated_owner $(stat -c %U /sys/fs/cgroup/system.slice/previewd.service/cgroup.procs)
journalctl -u previewd -o json --no-pager > {io}/journal.json
systemctl stop previewd; fact stop_rc $?
fact after_stop $(systemctl is-active previewd)
fact leftover_procs $(cat /sys/fs/cgroup/system.slice/previewd.service/cgroup.procs 2>/dev/null | wc -l)
fact leftover_named $(ps -eo user= | grep -c '^previewd' || true)
systemctl start previewd
for i in $(seq 1 240); do curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break; sleep 1; done
fact restart_healthz $(curl -fsS -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8080/healthz)
systemctl stop previewd
"""


def stage_package(dest: Path) -> Path:
    """Build the executable and lay out an install under `dest` (install.sh --root); returns dest."""
    pyz = dest / "previewd.pyz"
    build_python = str(Path(sys.base_prefix) / "bin" / "python3")
    steps = [
        ([str(REPO / "packaging" / "build.sh"), str(pyz)], {"PYTHON": build_python}),
        ([str(REPO / "packaging" / "install.sh"), "--root", str(dest / "pkg"), "--no-systemctl", "--exe", str(pyz)],
         {}),
    ]
    tools = REPO / ".tools"
    if tools.is_dir():  # install.sh keeps a pnpm of the right version: no npm fetch
        shutil.copytree(tools, dest / "pkg" / "opt" / "previewd" / "tools", symlinks=True)
    for argv, extra in steps:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env={**os.environ, **extra},
                              timeout=900, check=False)
        if proc.returncode != 0:
            raise GuestError(f"{' '.join(argv[:1])} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return dest


def boot_service(launcher: Launcher, staged: Path, timeout: float = 600.0) -> tuple[Boot, dict[str, str]]:
    """Boot the systemd guest that installs, starts, checks and stops the unit; the facts it wrote."""

    def prepare(io_dir: Path) -> None:
        units = io_dir / "root" / "etc" / "systemd" / "system"
        units.mkdir(parents=True)
        (units / "guest-driver.service").write_text(DRIVER_UNIT)
        (units / "guest.target").write_text(TARGET_UNIT)
        shutil.copy(REPO / "systemd" / "previewd.service", io_dir / "previewd.service")
        (staged / "pkg").rename(io_dir / "pkg")

    script = DRIVER.format(io=IO_MOUNT, repo=REPO)
    boot = launcher.boot(script, timeout, extra_cmdline=CMDLINE, prepare=prepare)
    facts_file = boot.io_dir / "facts.txt"
    if not facts_file.exists():
        raise GuestError(f"the systemd guest wrote no facts (driver exit {boot.exit_code}); its output:\n"
                         f"{boot.log()[-3000:]}\nconsole tail:\n{boot.console[-3000:]}")
    facts: dict[str, str] = {}
    for line in facts_file.read_text().splitlines():
        key, _, value = line.partition(" ")
        facts[key] = value
    return boot, facts
