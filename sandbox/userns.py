"""Which kernel setting stops an unprivileged daemon's bubblewrap from making its user namespace, and the exact fix.

bubblewrap run by a user other than root needs an unprivileged user namespace. Distributions restrict those in
three ways (each a sysctl under /proc/sys); `previewd doctor`, the daemon's start-up log and every refused build
(sandbox_unavailable) name the one that is set here and what to configure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DROP_IN = "/etc/sysctl.d/60-previewd-userns.conf"
APPARMOR_PROFILE = "/etc/apparmor.d/bwrap"
# A few thousand is what distributions that allow user namespaces ship; 0 turns them off for everyone.
MAX_USER_NAMESPACES = 15000


@dataclass(frozen=True)
class Restriction:
    """One sysctl that blocks unprivileged user namespaces: its name and value, what it does, and the fix."""

    sysctl: str
    value: str
    why: str
    fix: str


def _read(root: Path, sysctl: str) -> str | None:
    """A sysctl's value as /proc/sys under ``root`` shows it, or None where this kernel has no such setting."""
    try:
        return (root / "proc" / "sys" / sysctl.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def _sysctl_fix(sysctl: str, value: object) -> str:
    return (f"`sysctl -w {sysctl}={value}` now, and the line `{sysctl} = {value}` in {DROP_IN} so it holds "
            "after a reboot")


def apparmor_profile(bwrap: str = "/usr/bin/bwrap") -> str:
    """The AppArmor profile Ubuntu documents for a program that may make user namespaces, here for bwrap."""
    return (f"abi <abi/4.0>,\ninclude <tunables/global>\n\nprofile bwrap {bwrap} flags=(unconfined) {{\n"
            "  userns,\n}\n")


def profile_command(bwrap: str = "/usr/bin/bwrap") -> str:
    """One shell command that writes that profile to /etc/apparmor.d/bwrap and loads it."""
    text = apparmor_profile(bwrap).replace("\n", "\\n")
    return f"printf '{text}' > {APPARMOR_PROFILE} && apparmor_parser -r {APPARMOR_PROFILE}"


def restrictions(root: Path = Path("/"), euid: int | None = None, bwrap: str = "/usr/bin/bwrap") -> list[Restriction]:
    """Every sysctl under ``root``/proc/sys that keeps a process of ``euid`` (default: ours) from making a user
    namespace, the broadest first; [] when none does (or for root, whose bubblewrap needs none)."""
    if (os.geteuid() if euid is None else euid) == 0:
        return []
    found: list[Restriction] = []
    value = _read(root, "user.max_user_namespaces")
    if value == "0":
        found.append(Restriction(
            "user.max_user_namespaces", value, "user.max_user_namespaces = 0 allows no user namespaces at all",
            _sysctl_fix("user.max_user_namespaces", MAX_USER_NAMESPACES)))
    value = _read(root, "kernel.unprivileged_userns_clone")
    if value == "0":
        found.append(Restriction(
            "kernel.unprivileged_userns_clone", value,
            "kernel.unprivileged_userns_clone = 0 (Debian's switch) allows user namespaces to root only",
            _sysctl_fix("kernel.unprivileged_userns_clone", 1)))
    value = _read(root, "kernel.apparmor_restrict_unprivileged_userns")
    if value == "1":
        profile = root / APPARMOR_PROFILE.lstrip("/")
        loaded = (f"{APPARMOR_PROFILE} exists but is not in force: load it with `apparmor_parser -r "
                  f"{APPARMOR_PROFILE}`, and check that it names {bwrap} and says `userns,`" if profile.exists() else
                  f"write and load it with `{profile_command(bwrap)}`")
        found.append(Restriction(
            "kernel.apparmor_restrict_unprivileged_userns", value,
            "kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 24.04's default) lets only programs whose "
            "AppArmor profile says `userns,` make user namespaces",
            f"give bwrap such a profile (Ubuntu's way, the rest of the host stays restricted): {loaded}; or lift the "
            f"restriction for every program: {_sysctl_fix('kernel.apparmor_restrict_unprivileged_userns', 0)}"))
    return found


def explain(root: Path = Path("/"), euid: int | None = None, bwrap: str = "/usr/bin/bwrap") -> tuple[str, str] | None:
    """(why, fix) naming every restricting sysctl and how to lift it, as one message each; None when none is set."""
    found = restrictions(root, euid, bwrap)
    if not found:
        return None
    uid = os.geteuid() if euid is None else euid
    why = (f"the daemon runs as uid {uid}, not root, so bubblewrap needs an unprivileged user namespace, and "
           + "; ".join(r.why for r in found))
    fix = "; and ".join(f"for {r.sysctl}: {r.fix}" for r in found) + " (or run the daemon as root)"
    return why, fix
