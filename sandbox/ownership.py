"""The unprivileged build user: looking it up, and handing build trees to it."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def user_ids(user: str) -> tuple[int, int]:
    """(uid, gid) of a user name or numeric id; KeyError when unknown (the one user lookup of the project)."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError, OverflowError):
        raise KeyError(user) from None
    return pw.pw_uid, pw.pw_gid


def hand_over(root: Path, ids: tuple[int, int]) -> None:
    """Give a tree to the build user (lchown, links never followed), skipping subtrees it already owns.

    node_modules and build output are created by the build user itself, so after the first build only the
    files the daemon just wrote need changing.
    """
    uid, gid = ids
    st = os.lstat(root)
    if (st.st_uid, st.st_gid) != ids:
        os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for name in dirnames:
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            if (s.st_uid, s.st_gid) != ids:
                os.lchown(p, uid, gid)
                keep.append(name)
            elif name not in ("node_modules", ".git"):
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            if (s.st_uid, s.st_gid) != ids:
                os.lchown(p, uid, gid)
