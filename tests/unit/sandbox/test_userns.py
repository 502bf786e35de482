"""Which sysctl keeps an unprivileged daemon's bubblewrap from its user namespace, read from fake /proc trees, and
the daemon failing closed with that same message (issue 28)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

from daemon.project import isolation
from sandbox import userns
from sandbox.layers.base import Availability
from tests.support import make_config

UNPRIVILEGED = 1000


def fake_proc(root: Path, **sysctls: str) -> Path:
    """A /proc/sys under ``root`` holding only the named sysctls (`kernel__x` stands for kernel.x)."""
    for key, value in sysctls.items():
        path = root / "proc" / "sys" / key.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return root


def test_nothing_restricts_where_the_settings_allow_user_namespaces_or_do_not_exist(tmp_path: Path) -> None:
    assert userns.restrictions(tmp_path, UNPRIVILEGED) == []  # an older kernel has none of the three files
    open_host = fake_proc(tmp_path, user__max_user_namespaces="63445", kernel__unprivileged_userns_clone="1",
                          kernel__apparmor_restrict_unprivileged_userns="0")
    assert userns.restrictions(open_host, UNPRIVILEGED) == [] and userns.explain(open_host, UNPRIVILEGED) is None


def test_root_needs_no_unprivileged_namespace(tmp_path: Path) -> None:
    closed = fake_proc(tmp_path, user__max_user_namespaces="0", kernel__apparmor_restrict_unprivileged_userns="1")
    assert userns.restrictions(closed, 0) == []


def test_ubuntu_24_04_apparmor_restriction(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, kernel__apparmor_restrict_unprivileged_userns="1",
                     kernel__unprivileged_userns_clone="1", user__max_user_namespaces="63445")
    [r] = userns.restrictions(root, UNPRIVILEGED, "/usr/bin/bwrap")
    assert (r.sysctl, r.value) == ("kernel.apparmor_restrict_unprivileged_userns", "1")
    assert "/etc/apparmor.d/bwrap" in r.fix and "apparmor_parser -r /etc/apparmor.d/bwrap" in r.fix
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in r.fix
    assert "`kernel.apparmor_restrict_unprivileged_userns = 0` in /etc/sysctl.d/60-previewd-userns.conf" in r.fix
    why, fix = userns.explain(root, UNPRIVILEGED) or ("", "")
    assert f"uid {UNPRIVILEGED}, not root" in why and "apparmor_restrict_unprivileged_userns = 1" in why
    assert fix.startswith("for kernel.apparmor_restrict_unprivileged_userns:") and "run the daemon as root" in fix


def test_the_profile_command_writes_a_profile_that_grants_userns_to_that_bwrap(tmp_path: Path) -> None:
    cmd = userns.profile_command("/opt/bin/bwrap").replace(userns.APPARMOR_PROFILE, str(tmp_path / "bwrap"))
    subprocess.run(cmd.split(" && ")[0], shell=True, check=True)  # the printf half: apparmor_parser is not here
    text = (tmp_path / "bwrap").read_text()
    assert text == userns.apparmor_profile("/opt/bin/bwrap")
    assert "profile bwrap /opt/bin/bwrap flags=(unconfined) {\n  userns,\n}" in text


def test_an_existing_profile_that_is_not_loaded_is_named(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, kernel__apparmor_restrict_unprivileged_userns="1")
    (root / "etc" / "apparmor.d").mkdir(parents=True)
    (root / "etc" / "apparmor.d" / "bwrap").write_text(userns.apparmor_profile())
    [r] = userns.restrictions(root, UNPRIVILEGED)
    assert "exists but is not in force" in r.fix and "printf" not in r.fix


def test_older_debian_unprivileged_userns_clone(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, kernel__unprivileged_userns_clone="0", user__max_user_namespaces="63445")
    [r] = userns.restrictions(root, UNPRIVILEGED)
    assert (r.sysctl, r.value) == ("kernel.unprivileged_userns_clone", "0")
    assert "`sysctl -w kernel.unprivileged_userns_clone=1`" in r.fix
    assert "`kernel.unprivileged_userns_clone = 1` in /etc/sysctl.d/60-previewd-userns.conf" in r.fix


def test_max_user_namespaces_zero_and_every_restriction_named(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, user__max_user_namespaces="0", kernel__unprivileged_userns_clone="0",
                     kernel__apparmor_restrict_unprivileged_userns="1")
    found = userns.restrictions(root, UNPRIVILEGED)
    assert [r.sysctl for r in found] == ["user.max_user_namespaces", "kernel.unprivileged_userns_clone",
                                         "kernel.apparmor_restrict_unprivileged_userns"]
    assert f"`sysctl -w user.max_user_namespaces={userns.MAX_USER_NAMESPACES}`" in found[0].fix
    why, fix = userns.explain(root, UNPRIVILEGED) or ("", "")
    assert all(r.sysctl in fix and r.why in why for r in found)


def test_builds_are_refused_naming_the_sysctl_and_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_proc(tmp_path / "host", kernel__apparmor_restrict_unprivileged_userns="1")
    monkeypatch.setattr(userns, "explain", functools.partial(userns.explain, root, UNPRIVILEGED))
    monkeypatch.setattr(isolation, "bwrap_availability", lambda: Availability(
        False, "bwrap at /usr/bin/bwrap cannot create its namespaces here: bwrap: setting up uid map: Permission "
               "denied"))
    monkeypatch.setattr(isolation.shutil, "which", lambda name: f"/usr/bin/{name}")
    conf = isolation.confinement(make_config(tmp_path))
    assert (conf.confined, conf.allowed) == (False, False)
    assert "setting up uid map" in conf.why and "apparmor_restrict_unprivileged_userns = 1" in conf.why
    assert "apparmor_parser -r /etc/apparmor.d/bwrap" in conf.fix and "apt-get install" not in conf.fix
    assert "allow_unconfined = true" in conf.fix


def test_doctor_lists_the_restriction_beside_the_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.cli.previewd import doctor_report

    root = fake_proc(tmp_path / "host", kernel__unprivileged_userns_clone="0")
    monkeypatch.setattr(userns, "explain", functools.partial(userns.explain, root, UNPRIVILEGED))
    real = userns.restrictions
    monkeypatch.setattr(userns, "restrictions", lambda *_, bwrap="/usr/bin/bwrap": real(root, UNPRIVILEGED, bwrap))
    monkeypatch.setattr(isolation, "bwrap_availability", lambda: Availability(False, "bwrap: No permissions"))
    iso = doctor_report(make_config(tmp_path))["isolation"]
    assert [r["sysctl"] for r in iso["user_namespaces_restricted_by"]] == ["kernel.unprivileged_userns_clone"]
    assert "sandbox_unavailable" in iso["ERROR"] and "sysctl -w kernel.unprivileged_userns_clone=1" in iso["ERROR"]
