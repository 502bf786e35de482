"""Helpers for the history tests: a tiny web project on disk and the real git CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from daemon.history import ProjectRepo

SMALL_PROJECT = {
    "package.json": '{\n  "name": "demo",\n  "private": true,\n  "scripts": {"build": "vite build"}\n}\n',
    "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
    "index.html": '<!doctype html>\n<html>\n<body>\n<div id="app"></div>\n</body>\n</html>\n',
    "src/main.ts": "import './style.css'\nconst el = document.querySelector('#app')!\nel.textContent = 'hello'\n",
    "src/style.css": "body {\n  margin: 0;\n  color: #222;\n}\n",
}


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    """Write files (str as utf-8) under root, creating parents."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run the real git CLI against a bare repo; return stdout."""
    proc = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


class Repos:
    """Makes repos under tmp_path and remembers every repo path a test creates, for the fsck check."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: list[Path] = []

    def new(self, name: str = "repo.git") -> ProjectRepo:
        """A fresh bare repo."""
        path = self.root / name
        self.paths.append(path)
        return ProjectRepo.open_or_init(path)

    def track(self, path: Path) -> Path:
        """Have a repo made some other way (restore) checked too."""
        self.paths.append(path)
        return path
