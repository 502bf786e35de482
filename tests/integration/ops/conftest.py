"""Fixtures for operations tests: a wired (not started) daemon on a temp data dir and a seeder of real state."""

from __future__ import annotations

import hashlib
import sqlite3
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ulid import ULID

from daemon.cli.serve import Daemon
from daemon.core import versions
from daemon.core.db import Project, ProjectVersion, database
from daemon.deployers.previewnames import deployment_id_for
from daemon.publish import golive

NOW = datetime(2026, 6, 1, 12, 0, 0)


class Seeder:
    """Creates version rows with real artifact zips, preview dirs and git snapshots, dated relative to NOW."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.rt = d.rt
        self._n = 0
        self._last: dict[tuple[str, str], str] = {}

    def version(self, user: str, project: str, days: float, *, status: str = "deployed", pinned: bool = False,
                artifact: bool = True, preview: bool = True, snapshot: bool = False,
                remote_artifact: bool = False) -> ProjectVersion:
        """One version `days` old (its ULID carries the same time, so both orders agree)."""
        self._n += 1
        created = NOW - timedelta(days=days, microseconds=self._n)
        vid = str(ULID.from_datetime(created.replace(tzinfo=UTC)))
        rt = self.rt
        fields: dict[str, Any] = {}
        key = rt.layout.artifact_key(user, project, vid)
        if artifact:
            path = rt.layout.local_object(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("index.html", f"<h1>{vid}</h1>")
            if remote_artifact:
                assert rt.remote_objects is not None
                rt.remote_objects.put_file(key, path)
                fields["artifact_url"] = rt.remote_objects.url(key)
            else:
                fields["artifact_url"] = rt.local_objects.url(key)
        if preview and status == "deployed":
            dep = deployment_id_for(project, vid)
            (rt.data_dir / "previews" / dep).mkdir(parents=True)
            (rt.data_dir / "previews" / dep / "index.html").write_text(vid)
            fields["preview_url"] = rt.deployer.url_for(dep)  # type: ignore[attr-defined]
        if snapshot:
            ws = rt.layout.workspace(user, project)
            (ws / "index.html").write_text(f"<h1>{vid}</h1>")
            repo = rt.repo(user, project)
            repo.snapshot(ws, vid, self._last.get((user, project)), f"version {vid}")
            self._last[(user, project)] = vid
            (ws / "dist").mkdir(exist_ok=True)
            (ws / "dist" / "index.html").write_text(f"built {vid}")
            repo.snapshot_dist(ws, vid, "dist")
        rt.layout.log_path(vid).write_text(f"log of {vid}\n")
        return ProjectVersion.create(version_id=vid, user_id=user, project_id=project, prompt=f"prompt {self._n}",
                                     kind="new", status=status, pinned=pinned, created_at=created,
                                     updated_at=created, **fields)

    def make_live(self, v: ProjectVersion) -> None:
        with database.atomic():
            versions.set_live(self.rt.outbox, v, self.rt.cfg.kv.ttl_days * 86400)
        golive.pointer_moved(self.rt.kv, self.rt.sync_loop)

    def preview_dir(self, v: ProjectVersion) -> Path:
        return self.rt.data_dir / "previews" / deployment_id_for(v.project_id, v.version_id)

    def artifact(self, v: ProjectVersion) -> str:
        return self.rt.layout.artifact_key(v.user_id, v.project_id, v.version_id)

    def row(self, v: ProjectVersion) -> ProjectVersion | None:
        return ProjectVersion.get_or_none(ProjectVersion.version_id == v.version_id)

    def live_id(self, user: str, project: str) -> str | None:
        p = Project.get_or_none((Project.user_id == user) & (Project.project_id == project))
        return p.live_version_id if p else None


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its content hash (what `nothing changed` compares)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm")):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def db_dump(data_dir: Path) -> list[str]:
    """The whole state database as SQL statements, read on a separate connection."""
    conn = sqlite3.connect(str(data_dir / "state.db"))
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def ops(tmp_path: Path, make_daemon: Callable[..., Daemon]) -> Seeder:
    """A daemon (worker not started) with its own pnpm store, plus a seeder."""
    return Seeder(make_daemon(paths={"pnpm_store": str(tmp_path / "pnpm-store")}))  # never prune the shared store
