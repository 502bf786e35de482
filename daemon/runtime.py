"""The wired daemon: every edge picked from the config once (KV, objects, replica, generator, deployer, sandbox).

Wiring only: state changes live in `daemon.core.versions` and `daemon.publish.golive`, paths in `daemon.core.layout`.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sandbox
from daemon.core import versions
from daemon.core.background import Job, Jobs, Owned
from daemon.core.config import Config, ensure_hmac_secret
from daemon.core.contract import ContractLimits
from daemon.core.db import connect, database, raw_connect
from daemon.core.events import Events
from daemon.core.fencing import FencedOutbox
from daemon.core.layout import Layout
from daemon.core.livelogs import LiveLogs
from daemon.core.waiters import Waiters
from daemon.deployers.base import Deployer
from daemon.deployers.sanitize import SanitizingDeployer
from daemon.fleet.catchup import Stores
from daemon.fleet.leased import LeasedFleet
from daemon.fleet.ledger import FleetLedger, LocalLedger, QuotaLedger
from daemon.fleet.seam import Fleet
from daemon.fleet.single import SingleDroplet
from daemon.fleet.warmstart import WarmStart
from daemon.generators import Generator, make_generator
from daemon.history import ProjectRepo
from sync.handlers import fenced_kv_handler, kv_handler, objects_handler, replica_handler, usage_handler
from sync.kv import KV
from sync.lease import PgLeases
from sync.leasekeeper import LeaseKeeper
from sync.loop import SyncLoop
from sync.objects import ObjectStore
from sync.outbox import EnabledOutbox, Handler, Outbox, OutboxItem
from sync.registry import make_kv, make_object_store, make_replica
from sync.replica import Replica
from sync.replica.usage import PostgresUsage
from sync.storecache import StoreCache

log = logging.getLogger("previewd")


def _alive(thread: object) -> bool:
    return isinstance(thread, threading.Thread) and thread.is_alive()


class Runtime:
    """Everything a running daemon holds; built once from the config and handed down."""

    def __init__(self, cfg: Config, *, generator: Generator | None = None, deployer: Deployer | None = None,
                 kv: KV | None = None, remote_objects: ObjectStore | None = None,
                 store_tools: Callable[[Layout], Any] | None = None) -> None:
        """Pick every edge from the config; an edge passed in replaces the configured one (tests hand in fakes
        of the Protocols, or a second store standing in for the bucket). `store_tools(layout)`: pnpm's side of
        the warm start (`registry_integrities`, `prune`: daemon/project/hotset.py, handed in by the wiring)."""
        self.cfg = cfg
        self.layout = Layout.of(cfg.data_dir, cfg.paths.pnpm_store)
        self.layout.create()
        ensure_hmac_secret(cfg)
        connect(cfg.data_dir)
        self.local_objects: ObjectStore = make_object_store("local", root=self.layout.objects)
        self.kv: KV = kv if kv is not None else self._make_kv()
        self.remote_objects: ObjectStore | None = remote_objects or self._make_remote_objects()
        self.replica: Replica | None = make_replica(cfg.replica.backend, dsn=cfg.secrets.pg_dsn,
                                                    table=cfg.replica.table, schema=cfg.replica.schema) \
            if cfg.replica.backend == "postgres" else None
        # One outbox over the table: rows are added on the caller's (peewee) connection inside its transaction,
        # and drained by the sync loop on connections of its own.
        db_path = str(self.layout.data_dir / "state.db")
        outbox = Outbox(lambda: raw_connect(db_path), on_done=self._on_synced)
        with database.connection_context():
            outbox.ensure_schema(database.connection())
        handlers: dict[str, Handler] = {"kv": kv_handler(self.kv)}
        if self.replica is not None:
            handlers["replica"] = replica_handler(self.replica)
            # Plans and usage meters go to the same Postgres, beside the versions (a fleet sums them there).
            self.usage_store: PostgresUsage | None = PostgresUsage(cfg.secrets.pg_dsn, schema=cfg.replica.schema,
                                                                   versions_table=cfg.replica.table)
            handlers["usage"] = usage_handler(self.usage_store)
        else:
            self.usage_store = None
        if self.remote_objects is not None:
            handlers["objects"] = objects_handler(self.remote_objects)
        self.outbox = EnabledOutbox(outbox, set(handlers))
        # A fleet droplet (daemon/fleet/leased.py): per-project leases in Postgres; its replicated rows and pointer
        # moves carry the lease epoch and are refused when stale.
        keeper: LeaseKeeper | None = None
        # Where admission counts a user's month (daemon/fleet/ledger.py): this droplet's meter, or the fleet's.
        self.ledger: QuotaLedger = LocalLedger()
        if cfg.fleet.enabled and self.replica is not None:
            self.ledger = FleetLedger(PostgresUsage(cfg.secrets.pg_dsn, schema=cfg.replica.schema,
                                                    versions_table=cfg.replica.table),
                                      fail_open=cfg.fleet.quotas_fail_open)
            leases = PgLeases(cfg.secrets.pg_dsn, table=cfg.replica.table, schema=cfg.replica.schema)
            keeper = held = LeaseKeeper(leases, cfg.droplet_id, cfg.fleet.lease_ttl_s,
                                        release_idle_s=cfg.fleet.release_idle_s)

            def refused(what: object) -> None:
                held.refusals += len(what) if isinstance(what, list) else 1

            handlers["replica"] = replica_handler(self.replica, on_refused=refused)
            handlers["kv"] = fenced_kv_handler(self.kv, leases, on_refused=refused)
            self.outbox = FencedOutbox(outbox, set(handlers), keeper.epoch_of)
        self.sync_loop = SyncLoop(outbox, handlers, interval_s=cfg.sync.interval_s)
        self.generator: Generator = generator or make_generator(
            cfg.generator.backend, command=cfg.generator.command, claude_executable=cfg.generator.claude_executable,
            model=cfg.generator.model or None, timeout_s=cfg.generator.timeout_s,
            limits=ContractLimits(max_files=cfg.generator.max_files, max_file_bytes=cfg.generator.max_file_bytes,
                                  max_total_bytes=cfg.generator.max_total_bytes))
        # Every deployer publishes a sanitised copy of the output, never the workspace (daemon/deployers/sanitize.py).
        self.deployer: Deployer = SanitizingDeployer(deployer or self._make_deployer(), self.layout.tmp / "deploy",
                                                     allow_functions=cfg.deploy.allow_functions)
        # What happened (a build ended, a deployment settled, checks were recorded), for whoever subscribed.
        self.events = Events()
        self.warm_start: WarmStart | None = self._make_warm_start(keeper, store_tools)
        self.fleet: Fleet = self._pick_fleet(keeper)
        self.sandbox_layer = sandbox.select_layer(None if cfg.sandbox.layer == "auto" else cfg.sandbox.layer)
        self.waiters = Waiters()
        # version id -> its BuildLog while it builds; a dict that wakes log streams waiting for a build to start
        self.live_logs = LiveLogs()
        # Work after a version went live outside the build worker (a rollback's history bookkeeping, render checks
        # of a second or two of Chromium each): one at a time, in order, after the answer.
        self.after_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="previewd-after")
        # Every background job, declared once (daemon/core/background.py); the state that used to sit in
        # module-level maps has an owner: `owned` here, the fleet's guards in the fleet, the metrics and alerts in
        # the operations jobs (daemon/ops/jobs.py) that the composition root builds beside the runtime.
        self.jobs = Jobs()
        self.owned = Owned()
        self._declare_jobs()

    @property
    def data_dir(self) -> Path:
        return self.layout.data_dir

    # -- edges -------------------------------------------------------------------------------------------
    def _make_kv(self) -> KV:
        c = self.cfg.kv
        if c.backend == "cloudflare":
            return make_kv("cloudflare", account_id=c.cf_account_id, namespace_id=c.cf_namespace_id,
                           api_token=self.cfg.secrets.cf_api_token, base_url=c.cf_api_base)
        return make_kv("local", db_path=self.layout.data_dir / "kv.db")

    def _make_remote_objects(self) -> ObjectStore | None:
        c, s = self.cfg.objects, self.cfg.secrets
        if c.backend != "s3":
            return None
        return make_object_store("s3", bucket=c.bucket, endpoint_url=c.endpoint_url or None, region=c.region,
                                 access_key=s.s3_access_key_id or None, secret_key=s.s3_secret_access_key or None,
                                 prefix=c.prefix)

    def _make_deployer(self) -> Deployer:
        c = self.cfg.deploy
        if c.backend == "cloudflare":
            from daemon.deployers.cloudflare.branches import checked_branch
            from daemon.deployers.cloudflare.deployer import CloudflareDeployer

            return CloudflareDeployer(c.cf_account_id, self.cfg.secrets.cf_api_token, c.cf_project_name,
                                      wrangler=tuple(c.wrangler), api_base=c.cf_api_base, timeout_s=c.timeout_s,
                                      branch_for=lambda req: checked_branch(req, self.fleet_projects),
                                      projects=self.fleet_projects)
        from daemon.deployers.local import LocalDeployer

        return LocalDeployer(self.layout.previews, preview_domain=self.cfg.server.preview_domain,
                             port=self.cfg.previews_port)

    def _make_warm_start(self, keeper: LeaseKeeper | None,
                         store_tools: Callable[[Layout], Any] | None) -> WarmStart | None:
        """A fleet droplet with an S3 bucket and `[fleet] warm_start` shares its pnpm store through the bucket's
        `_store-cache/` prefix (no user key can start with `_`: sync/names.py)."""
        c, s, f = self.cfg.objects, self.cfg.secrets, self.cfg.fleet
        if keeper is None or c.backend != "s3" or not f.warm_start or self.remote_objects is None:
            return None
        prefix = (c.prefix.rstrip("/") + "/" if c.prefix else "") + "_store-cache"
        objects = make_object_store("s3", bucket=c.bucket, endpoint_url=c.endpoint_url or None, region=c.region,
                                    access_key=s.s3_access_key_id or None, secret_key=s.s3_secret_access_key or None,
                                    prefix=prefix, max_attempts=2, timeout_s=15.0)  # a bucket that is down fails
        # the warm-up fast (builds are then taken with a cold store), instead of holding the droplet out for minutes
        scratch = self.layout.tmp / "store-cache"
        scratch.mkdir(parents=True, exist_ok=True)
        tools = store_tools(self.layout) if store_tools is not None else None
        return WarmStart(StoreCache(objects, self.layout.store_dir, scratch, self.cfg.droplet_id),
                         resolve=tools.registry_integrities if tools else None,
                         budget_bytes=f.store_budget_mb * 2**20, timeout_s=f.warm_timeout_s,
                         prune=tools.prune if tools else None)

    def _pick_fleet(self, keeper: LeaseKeeper | None) -> Fleet:
        """The droplet alone, or one of a fleet over `keeper`'s leases: the one place that asks which."""
        if keeper is None or self.replica is None:
            return SingleDroplet(self.deployer)
        stores = Stores(self.layout, self.replica, self.outbox, self.sync_loop, self.local_objects,
                        self.remote_objects, self.usage_store)
        return LeasedFleet(keeper, stores, self.deployer, self.events, preview_domain=self.cfg.server.preview_domain,
                           previews_port=self.cfg.previews_port, warm=self.warm_start)

    def fleet_projects(self) -> list[tuple[str, str]]:
        """Every (user, project) with a lease row in the fleet ([] off a fleet): who may own a live branch."""
        return self.fleet.projects()

    def _on_synced(self, conn: sqlite3.Connection, destination: str, items: list[OutboxItem]) -> None:
        """An artifact upload was confirmed: record its URL (and replicate that change) in sync's transaction."""
        if destination != "objects" or self.remote_objects is None:
            return
        for item in items:
            vid = item.payload.get("version_id")
            key = item.payload.get("key", item.key)
            if vid and "/snapshots/" in key:
                versions.confirm_artifact(conn, self.outbox, vid, self.remote_objects.url(key))

    # -- shared handles ----------------------------------------------------------------------------------
    def repo(self, user_id: str, project_id: str) -> ProjectRepo:
        return ProjectRepo.open_or_init(self.layout.repo_path(user_id, project_id))

    def notify(self, version_id: str) -> None:
        """Wake the requests waiting on this version."""
        self.waiters.notify(version_id)

    def sync_nudge(self) -> None:
        self.sync_loop.nudge()

    def _declare_jobs(self) -> None:
        """The runtime's own jobs; stopped (by `close`, or the daemon's stop) in reverse: the after-live pool, the
        sync loop (its final flush while leases are still held), the lease keeper."""
        for job in self.fleet.jobs():
            self.jobs.declare(job)
        if self.warm_start is not None:
            self.jobs.declare(self.warm_start.job())
        loop = self.sync_loop
        sync_job: Job

        def stop_sync(_grace: float) -> None:
            if sync_job.started:  # a daemon that ran flushes what it can; the outbox keeps the rest
                try:
                    loop.flush(timeout_s=5)
                except Exception:
                    log.warning("final sync flush failed; the outbox keeps the rest", exc_info=True)
            loop.stop()

        sync_job = self.jobs.declare(Job("sync", "own thread", f"every {self.cfg.sync.interval_s:g} s and on nudge",
                                         "flush up to 5 s, stop, join 10 s", start=loop.start, stop=stop_sync,
                                         alive=lambda: _alive(getattr(loop, "_thread", None))))
        pool = self.after_pool
        self.jobs.declare(Job("after-live", "bounded pool", "per version gone live (1 thread, in order)",
                              "shutdown: cancel queued, wait for the running one",
                              stop=lambda _g: pool.shutdown(wait=True, cancel_futures=True),
                              alive=lambda: any(t.is_alive() for t in getattr(pool, "_threads", ()))))

    def close(self) -> None:
        self.jobs.stop()
        self.ledger.close()
        shutil.rmtree(self.layout.tmp, ignore_errors=True)
        if not database.is_closed():
            database.close()
