"""The wired daemon: every edge picked from the config once, plus the small shared services the API and worker use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

import sandbox
from daemon.build import toolchain
from daemon.build.buildlog import BuildLog
from daemon.core import versions
from daemon.core.config import Config, ensure_hmac_secret
from daemon.core.contract import ContractLimits
from daemon.core.db import ProjectVersion, connect, database, utcnow
from daemon.deployers.base import Deployer
from daemon.deployers.sanitize import SanitizingDeployer
from daemon.generators import Generator, make_generator
from daemon.history import ProjectRepo
from sync.kv import KV, LocalKV
from sync.objects import LocalObjectStore, ObjectStore
from sync.outbox import Outbox

log = logging.getLogger("previewd")

DIST_WINDOW = 3


def _parse_pointer(raw: bytes | None) -> dict[str, Any] | None:
    """A KV pointer value, or None when absent or not a pointer."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "latestVersionId" in data else None


class FilteredOutbox:
    """Writes outbox rows only for destinations that exist in this configuration."""

    def __init__(self, outbox: Outbox, enabled: set[str]) -> None:
        self.outbox = outbox
        self.enabled = enabled

    def add(self, conn: Any, destination: str, key: str, payload: dict[str, Any]) -> None:
        if destination in self.enabled:
            self.outbox.add(conn, destination, key, payload)


class Waiters:
    """Lets API requests await a version reaching a terminal state without polling the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[str, list[Callable[[], None]]] = {}

    def notify(self, version_id: str) -> None:
        with self._lock:
            callbacks = self._callbacks.pop(version_id, [])
        for cb in callbacks:
            cb()

    async def wait(self, version_id: str, timeout: float, is_done: Callable[[], bool]) -> bool:
        """True when the version finished within timeout."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: None if fut.done() else fut.set_result(None))

        with self._lock:
            self._callbacks.setdefault(version_id, []).append(wake)
        try:
            if is_done():
                return True
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return is_done()
        finally:
            with self._lock:
                cbs = self._callbacks.get(version_id)
                if cbs and wake in cbs:
                    cbs.remove(wake)


class Runtime:
    """Everything a running daemon holds; built once from the config and handed down."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.data_dir = cfg.data_dir
        for sub in ("projects", "objects", "previews", "logs", "pnpm-store", "tmp"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        ensure_hmac_secret(cfg)
        connect(self.data_dir)
        self.store_dir = Path(cfg.paths.pnpm_store).expanduser().resolve() if cfg.paths.pnpm_store \
            else self.data_dir / "pnpm-store"
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.local_objects = LocalObjectStore(self.data_dir / "objects")
        self.kv: KV = self._make_kv()
        self.remote_objects: ObjectStore | None = self._make_remote_objects()
        self.replica = self._make_replica()
        self._outbox = Outbox(lambda: database.connection())
        with database.connection_context():
            self._outbox.ensure_schema(database.connection())
        enabled = {"kv"}
        if self.replica is not None:
            enabled.add("replica")
        if self.remote_objects is not None:
            enabled.add("objects")
        self.outbox = FilteredOutbox(self._outbox, enabled)
        self.generator: Generator = make_generator(
            cfg.generator.backend, command=cfg.generator.command, claude_executable=cfg.generator.claude_executable,
            model=cfg.generator.model or None, timeout_s=cfg.generator.timeout_s,
            limits=ContractLimits(max_files=cfg.generator.max_files, max_file_bytes=cfg.generator.max_file_bytes,
                                  max_total_bytes=cfg.generator.max_total_bytes))
        # Every deployer publishes a sanitised copy of the output, never the workspace (daemon/deployers/sanitize.py).
        self.deployer: Deployer = SanitizingDeployer(self._make_deployer(), self.data_dir / "tmp" / "deploy",
                                                     allow_functions=cfg.deploy.allow_functions)
        self.sandbox_layer = sandbox.select_layer(None if cfg.sandbox.layer == "auto" else cfg.sandbox.layer)
        self.waiters = Waiters()
        self.live_logs: dict[str, BuildLog] = {}
        self.dist_pending: dict[str, str] = {}
        self._repo_locks: dict[str, threading.Lock] = {}
        self._repo_locks_guard = threading.Lock()
        self.sync_loop: Any = None
        self.on_build_done: list[Callable[[ProjectVersion], None]] = []
        self.on_deploy_settled: list[Callable[[str, str, str], None]] = []
        # Plain event counters (webhook outcomes, rate-limited requests) that metrics and status read.
        self.counters: dict[str, int] = {}
        # Render checks take a second or two of Chromium each: one at a time, off the build worker.
        self.render_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="previewd-render")
        self._counters_lock = threading.Lock()

    # -- edges -------------------------------------------------------------------------------------------
    def _make_kv(self) -> KV:
        c = self.cfg.kv
        if c.backend == "cloudflare":
            from sync.kv import CloudflareKV

            return CloudflareKV(c.cf_account_id, c.cf_namespace_id, self.cfg.secrets.cf_api_token,
                                base_url=c.cf_api_base)
        return LocalKV(self.data_dir / "kv.db")

    def _make_remote_objects(self) -> ObjectStore | None:
        c = self.cfg.objects
        if c.backend != "s3":
            return None
        from sync.objects import S3ObjectStore

        return S3ObjectStore(c.bucket, endpoint_url=c.endpoint_url or None, region=c.region,
                             access_key=self.cfg.secrets.s3_access_key_id or None,
                             secret_key=self.cfg.secrets.s3_secret_access_key or None, prefix=c.prefix)

    def _make_replica(self) -> Any:
        if self.cfg.replica.backend != "postgres":
            return None
        from sync.replica import PostgresReplica

        return PostgresReplica(self.cfg.secrets.pg_dsn, table=self.cfg.replica.table, schema=self.cfg.replica.schema)

    def _make_deployer(self) -> Deployer:
        c = self.cfg.deploy
        if c.backend == "cloudflare":
            from daemon.deployers.cloudflare import CloudflareDeployer

            return CloudflareDeployer(c.cf_account_id, self.cfg.secrets.cf_api_token, c.cf_project_name,
                                      wrangler=tuple(c.wrangler), api_base=c.cf_api_base, timeout_s=c.timeout_s)
        from daemon.deployers.local import LocalDeployer

        return LocalDeployer(self.data_dir / "previews", preview_domain=self.cfg.server.preview_domain,
                             port=self.cfg.server.port)

    # -- paths -------------------------------------------------------------------------------------------
    def project_dir(self, user_id: str, project_id: str) -> Path:
        return self.data_dir / "projects" / user_id / project_id

    def workspace(self, user_id: str, project_id: str) -> Path:
        ws = self.project_dir(user_id, project_id) / "work"
        ws.mkdir(parents=True, exist_ok=True)
        return ws

    def repo(self, user_id: str, project_id: str) -> ProjectRepo:
        return ProjectRepo.open_or_init(self.project_dir(user_id, project_id) / "repo.git")

    def repo_lock(self, user_id: str, project_id: str) -> threading.Lock:
        with self._repo_locks_guard:
            return self._repo_locks.setdefault(f"{user_id}/{project_id}", threading.Lock())

    def log_path(self, version_id: str) -> Path:
        return self.data_dir / "logs" / f"{version_id}.log"

    def build_home(self, version_id: str) -> Path:
        home = self.data_dir / "tmp" / f"home-{version_id}"
        home.mkdir(parents=True, exist_ok=True)
        return home

    @staticmethod
    def artifact_key(user_id: str, project_id: str, version_id: str) -> str:
        return f"{user_id}/{project_id}/snapshots/{version_id}.zip"

    @staticmethod
    def pack_key(user_id: str, project_id: str, base: str | None, top: str) -> str:
        return f"{user_id}/{project_id}/packs/git_{base or 'root'}_to_{top}.pack.zip"

    def local_objects_path(self, key: str) -> Path:
        return self.data_dir / "objects" / key

    def toolchain(self) -> toolchain.Toolchain:
        return toolchain.resolve(self.cfg.paths.node, self.cfg.paths.pnpm)

    # -- state changes shared by worker, API and scheduler -------------------------------------------------
    def register_artifact(self, v: ProjectVersion, key: str, path: Path) -> str | None:
        """The zip is in the local store; queue its upload when a remote store exists. Returns the URL known now."""
        if self.remote_objects is None:
            return self.local_objects.url(key)
        with database.atomic():
            self.outbox.add(database.connection(), "objects", key,
                            {"key": key, "path": str(path), "content_type": "application/zip",
                             "version_id": v.version_id})
        return None

    def store_object(self, key: str, data: bytes, content_type: str) -> Path:
        """Write an object into the local store (atomically) and queue its upload when a remote store exists."""
        path = self.local_objects_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        if self.remote_objects is not None:
            with database.atomic():
                self.outbox.add(database.connection(), "objects", key,
                                {"key": key, "path": str(path), "content_type": content_type, "version_id": None})
        return path

    def mark_deployed(self, version_id: str, fields: dict[str, Any]) -> ProjectVersion:
        """The version is live: row deployed and the KV pointer moved, in one transaction."""
        with database.atomic("IMMEDIATE"):
            v = versions.update(self.outbox, version_id, status="deployed", deployed_at=utcnow(), **fields)
            versions.set_live(self.outbox, v, self.cfg.kv.ttl_days * 86400)
        self.pointer_moved()
        return v

    def pointer_moved(self) -> None:
        """After a pointer move commits: a local KV is written at once (reads right after must see it);
        a remote one is left to the sync loop, so no request waits on the network."""
        loop = self.sync_loop
        if loop is None:
            return
        if isinstance(self.kv, LocalKV) and "kv" in loop.handlers:
            try:
                loop.outbox.drain({"kv": loop.handlers["kv"]})
            except Exception:
                log.warning("local KV write failed; the sync loop retries it", exc_info=True)
        loop.nudge()

    def watch_deployment(self, v: ProjectVersion) -> None:
        """Wait for the platform to confirm an upload (webhook, or polling after the grace period)."""
        from daemon.build import deploywatch

        deploywatch.watch(self, v)

    def schedule_render_check(self, version_id: str) -> None:
        """Queue the browser check of a version that just went live."""
        if not self.cfg.render.enabled:
            return
        from daemon.build import screens

        def run() -> None:
            try:
                screens.check_version(self, version_id)
            except Exception:
                log.exception("render check of %s failed", version_id)

        with contextlib.suppress(RuntimeError):  # the pool refuses work while shutting down
            self.render_pool.submit(run)

    def count(self, name: str, n: int = 1) -> None:
        """Bump an event counter."""
        with self._counters_lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def notify(self, version_id: str) -> None:
        self.waiters.notify(version_id)

    def sync_nudge(self) -> None:
        if self.sync_loop is not None:
            self.sync_loop.nudge()

    def metrics_build_done(self, v: ProjectVersion) -> None:
        for fn in self.on_build_done:
            try:
                fn(v)
            except Exception:
                log.exception("build-done hook failed")

    def after_deploy(self, v: ProjectVersion) -> None:
        """Dist snapshot, window slide and prune, recovery pack: after the answer, before the next build."""
        out_rel = self.dist_pending.pop(v.version_id, None)
        with self.repo_lock(v.user_id, v.project_id):
            repo = self.repo(v.user_id, v.project_id)
            if out_rel:
                repo.snapshot_dist(self.workspace(v.user_id, v.project_id), v.version_id, out_rel)
            keep = [x.version_id for x in ProjectVersion.select(ProjectVersion.version_id)
                    .where((ProjectVersion.user_id == v.user_id) & (ProjectVersion.project_id == v.project_id)
                           & ProjectVersion.status.in_(("deployed", "deploying")))
                    .order_by(ProjectVersion.version_id.desc()).limit(DIST_WINDOW)]
            if repo.slide_dist_window(keep):
                repo.prune()
            base = v.parent_version_id if v.parent_version_id and repo.has_version(v.parent_version_id) else None
            if repo.has_version(v.version_id):
                key = self.pack_key(v.user_id, v.project_id, base, v.version_id)
                self.store_object(key, repo.export_pack(base, v.version_id), "application/zip")
        self.sync_nudge()

    def pointer_nowait(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The pointer when a local KV holds it and answers without waiting (the event loop calls this, saving a
        thread hop per read); None means: ask `pointer` in a thread."""
        if not isinstance(self.kv, LocalKV):
            return None
        try:
            return _parse_pointer(self.kv.get_nowait(versions.pointer_key(user_id, project_id)))
        except (BlockingIOError, sqlite3.Error, ValueError):
            return None

    def pointer(self, user_id: str, project_id: str) -> dict[str, Any] | None:
        """The seed's retrieve flow: KV first, the database second."""
        key = versions.pointer_key(user_id, project_id)
        try:
            raw = self.kv.get(key)
        except Exception:
            log.warning("KV read failed for %s; falling back to the database", key, exc_info=True)
            raw = None
        data = _parse_pointer(raw)
        if data is not None:
            return data
        v = versions.live_version(user_id, project_id)
        if v is None:
            return None
        return {"latestVersionId": v.version_id, "previewUrl": v.preview_url,
                "timestamp": int(v.updated_at.replace(tzinfo=UTC).timestamp() * 1000) if v.updated_at else None}

    def close(self) -> None:
        self.render_pool.shutdown(wait=True, cancel_futures=True)
        if self.sync_loop is not None:
            self.sync_loop.stop()
        shutil.rmtree(self.data_dir / "tmp", ignore_errors=True)
        if not database.is_closed():
            database.close()
