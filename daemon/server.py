"""`previewd serve`: one process holding the ASGI server, the build worker, the sync loop and the scheduler."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

from daemon import deploywatch, logging_setup, metrics, ops_api, versions
from daemon.app import create_app
from daemon.builds import Pipeline
from daemon.config import Config
from daemon.db import PRAGMAS
from daemon.fastpaths import PointerFastPath
from daemon.preview_server import make_preview_asgi
from daemon.queue import BuildQueue
from daemon.runtime import Runtime
from daemon.scheduler import Scheduler
from sync.handlers import kv_handler, objects_handler, replica_handler
from sync.loop import SyncLoop
from sync.outbox import Outbox, OutboxItem

log = logging.getLogger("previewd")

BOOL_COLUMNS = ("needs_rebuild", "pinned")
BUSY_TIMEOUT_S = 10.0


def raw_connect(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection with the daemon's pragmas (for sync's own transactions)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)
    for name, value in PRAGMAS.items():
        conn.execute(f"PRAGMA {name}={value}")
    return conn


def _row_record(conn: sqlite3.Connection, version_id: str) -> dict[str, Any] | None:
    """The replica record of a row, read on sync's own connection (it holds the write lock here)."""
    cur = conn.execute("SELECT * FROM project_versions WHERE version_id = ?", (version_id,))
    row = cur.fetchone()
    if row is None:
        return None
    cols = [d[0] for d in cur.description]
    data = dict(zip(cols, row, strict=True))
    rec: dict[str, Any] = {}
    for k in RECORD_KEYS:
        val = data.get(k)
        if k in BOOL_COLUMNS:
            val = bool(val)
        elif k == "claude_json":
            val = json.loads(val) if val else None
        elif k in ("created_at", "updated_at", "archived_at") and val:
            val = str(val).replace(" ", "T") + ("" if "+" in str(val) else "+00:00")
        rec[k] = val
    return rec


RECORD_KEYS = (
    "version_id", "user_id", "project_id", "prompt", "parent_version_id", "preview_url", "artifact_url",
    "framework", "build_duration_ms", "output_size_bytes", "claude_json", "status", "needs_rebuild",
    "base_snapshot_id", "cf_deployment_id", "node_version", "pnpm_version", "created_at", "failure_reason",
    "pinned", "rollback_of", "archived_at", "updated_at", "row_version",
)


class Daemon:
    """Builds the runtime and its loops; `start`/`stop` bracket the ASGI server's life."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rt = Runtime(cfg)
        self.pipeline = Pipeline(self.rt)
        self.queue = BuildQueue(self.rt.data_dir / "queue.db", self.pipeline.run)
        db_path = str(self.rt.data_dir / "state.db")
        outbox = Outbox(lambda: raw_connect(db_path), on_done=self._on_synced)
        handlers: dict[str, Any] = {"kv": kv_handler(self.rt.kv)}
        if self.rt.replica is not None:
            handlers["replica"] = replica_handler(self.rt.replica)
        if self.rt.remote_objects is not None:
            handlers["objects"] = objects_handler(self.rt.remote_objects)
        self.sync = SyncLoop(outbox, handlers, interval_s=cfg.sync.interval_s)
        self.outbox = outbox
        self.rt.sync_loop = self.sync
        self.scheduler = Scheduler(self)
        metrics.install_metrics(self.rt)
        self.app = create_app(self.rt, self.queue, ops_api.HANDLERS)
        self.asgi = logging_setup.RequestIdMiddleware(
            make_preview_asgi(PointerFastPath(self.app, self.rt), self.rt.data_dir / "previews",  # type: ignore[arg-type]
                              cfg.server.preview_domain))
        self.started_at = time.time()

    def _on_synced(self, conn: sqlite3.Connection, destination: str, items: list[OutboxItem]) -> None:
        """An artifact upload was confirmed: record its URL (and replicate that change) in sync's transaction."""
        if destination != "objects" or self.rt.remote_objects is None:
            return
        for item in items:
            vid = item.payload.get("version_id")
            key = item.payload.get("key", item.key)
            if not vid or "/snapshots/" not in key:
                continue
            conn.execute(
                "UPDATE project_versions SET artifact_url = ?, row_version = row_version + 1, "
                "updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE version_id = ?",
                (self.rt.remote_objects.url(key), vid))
            rec = _row_record(conn, vid)
            if rec is not None and self.rt.replica is not None:
                self.outbox.add(conn, "replica", vid, rec)

    def start(self) -> None:
        """Recover what a dead process left, then start the worker, the sync loop and the scheduler."""
        failed, queued = versions.recover_interrupted(self.rt.outbox)
        resumed = deploywatch.resume(self.rt)
        if resumed:
            log.info("resumed waiting on %d unconfirmed deployments", resumed)
        for vid in failed:
            log.warning("version %s was interrupted by a restart; marked failed (interrupted)", vid)
        self.queue.reset(queued)
        self.queue.start()
        self.sync.start()
        self.scheduler.start()
        log.info("previewd ready on %s (sandbox %s, generator %s, deployer %s)", self.cfg.base_url,
                 self.rt.sandbox_layer, self.rt.generator.name, self.rt.deployer.name)

    def stop(self) -> None:
        """Stop taking work, let a running build finish its step, flush what can be flushed."""
        self.scheduler.stop()
        self.queue.stop(graceful=True)
        try:
            self.sync.flush(timeout_s=5)
        except Exception:
            log.warning("final sync flush failed; the outbox keeps the rest", exc_info=True)
        self.rt.close()


def serve(cfg: Config) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM."""
    import uvicorn

    logging_setup.configure(cfg.server.log_level, secrets=cfg.secrets.values())
    d = Daemon(cfg)
    d.start()
    try:
        uvicorn.run(d.asgi, host=cfg.server.host, port=cfg.server.port, log_level=cfg.server.log_level,
                    access_log=False, lifespan="on", timeout_graceful_shutdown=10, log_config=None)
    finally:
        d.stop()
