"""The names inside a project's repository: its main branch, and what a version id may be."""

from __future__ import annotations

import re
from pathlib import Path

from dulwich.refs import Ref
from dulwich.repo import Repo

MAIN = b"refs/heads/main"
VERSION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")


def init_refs(path: Path) -> None:
    """Point a new repository's HEAD at refs/heads/main."""
    with Repo(str(path)) as repo:
        repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(MAIN))
