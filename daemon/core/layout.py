"""Where everything lives under the data dir, and the object-store keys (the same in the local store and the bucket)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sync.names import check_id, key_owner_reserved

SUBDIRS = ("projects", "objects", "previews", "logs", "tmp")


@dataclass(frozen=True)
class Layout:
    """Paths of one data dir. Pure: nothing here touches the disk except `create` and `workspace`."""

    data_dir: Path
    store_dir: Path

    @classmethod
    def of(cls, data_dir: Path, pnpm_store: str = "") -> Layout:
        """The layout for a data dir; `pnpm_store` overrides where the shared store lives (empty: inside it)."""
        store = Path(pnpm_store).expanduser().resolve() if pnpm_store else data_dir / "pnpm-store"
        return cls(data_dir, store)

    def create(self) -> None:
        """Make the top-level directories (idempotent)."""
        for sub in SUBDIRS:
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(parents=True, exist_ok=True)

    # -- per project -------------------------------------------------------------------------------------
    # Every path or key a user id becomes is built here (tests/unit/daemon/test_reserved_names.py walks the code
    # for any other), and each builder refuses an id outside sync.names' rule: a reserved name never reaches disk.
    def project_dir(self, user_id: str, project_id: str) -> Path:
        return self.data_dir / "projects" / check_id(user_id, "userId") / check_id(project_id, "projectId")

    def workspace(self, user_id: str, project_id: str) -> Path:
        """The project's build workspace (created when missing)."""
        ws = self.project_dir(user_id, project_id) / "work"
        ws.mkdir(parents=True, exist_ok=True)
        return ws

    def repo_path(self, user_id: str, project_id: str) -> Path:
        return self.project_dir(user_id, project_id) / "repo.git"

    # -- per version -------------------------------------------------------------------------------------
    def log_path(self, version_id: str) -> Path:
        return self.data_dir / "logs" / f"{version_id}.log"

    def build_home(self, version_id: str) -> Path:
        """A build's private HOME (created; removed after the build)."""
        home = self.data_dir / "tmp" / f"home-{version_id}"
        home.mkdir(parents=True, exist_ok=True)
        return home

    # -- shared ------------------------------------------------------------------------------------------
    @property
    def tmp(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def previews(self) -> Path:
        return self.data_dir / "previews"

    @property
    def objects(self) -> Path:
        return self.data_dir / "objects"

    @property
    def cache(self) -> Path:
        return self.data_dir / "cache"

    def local_object(self, key: str) -> Path:
        """The file behind an object key in the local store (never one of the store's own folders)."""
        if key_owner_reserved(key):
            raise ValueError(f"object key {key!r} starts with a reserved name")
        return self.objects / key

    # -- object keys -------------------------------------------------------------------------------------
    @staticmethod
    def project_prefix(user_id: str, project_id: str) -> str:
        """The key prefix every object of one project starts with."""
        return f"{check_id(user_id, 'userId')}/{check_id(project_id, 'projectId')}/"

    @staticmethod
    def artifact_key(user_id: str, project_id: str, version_id: str) -> str:
        return f"{Layout.project_prefix(user_id, project_id)}snapshots/{version_id}.zip"

    @staticmethod
    def pack_key(user_id: str, project_id: str, base: str | None, top: str) -> str:
        return f"{Layout.project_prefix(user_id, project_id)}packs/git_{base or 'root'}_to_{top}.pack.zip"

    @staticmethod
    def packs_prefix(user_id: str, project_id: str) -> str:
        return f"{Layout.project_prefix(user_id, project_id)}packs/"

    @staticmethod
    def screen_key(user_id: str, project_id: str, version_id: str, size: str) -> str:
        return f"{Layout.project_prefix(user_id, project_id)}screens/{version_id}-{size}.png"
