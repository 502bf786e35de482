"""The composition root: from the config, build once the runtime's edges, the build pipeline and its queue, the
operations jobs and their scheduler, the typed services, and the HTTP app (the API and the dashboard) behind its
ASGI wrappers.

`previewd serve` (`daemon.cli.serve`) calls `wire` and runs what it returns; nothing below the CLI imports this
module. Handlers and pages receive the services by name through Litestar's `Provide`; only the guards and the
error handler, which take no dependencies, read `Access` from the app's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.di import Provide

from daemon.api.app import create_app
from daemon.api.fastpath import PointerFastPath
from daemon.api.previews import make_preview_asgi, make_public_asgi
from daemon.core import logging_setup
from daemon.core.config import Config
from daemon.core.events import RepairEnded
from daemon.intake import repair
from daemon.intake.queue import BuildQueue
from daemon.ops.alerts import Alerts
from daemon.ops.cleanup import Cleanup
from daemon.ops.jobs import OpsJobs
from daemon.ops.metrics import Metrics, StateGauges
from daemon.ops.retention import RetentionSweep
from daemon.ops.scheduler import Scheduler
from daemon.ops.status import Status
from daemon.project.hotset import PnpmStoreTools
from daemon.publish import deploywatch, livealias
from daemon.publish.previewfetch import PreviewResolver
from daemon.runtime import Runtime
from daemon.services.access import Access
from daemon.services.buildlogs import BuildLogs
from daemon.services.builds import Builds
from daemon.services.callbacks import PagesCallbacks
from daemon.services.history import HistoryView
from daemon.services.operations import Operations
from daemon.services.plans import Plans
from daemon.services.publisher import Publisher
from daemon.services.streams import StreamSlots
from daemon.services.telemetry import Telemetry
from daemon.steps.pipeline import Pipeline


@dataclass(frozen=True)
class Services:
    """The typed services of one daemon; each field name is the name a handler's parameter asks for."""

    access: Access
    telemetry: Telemetry
    builds: Builds
    logs: BuildLogs
    publisher: Publisher
    history: HistoryView
    operations: Operations
    plans: Plans
    callbacks: PagesCallbacks

    @classmethod
    def build(cls, rt: Runtime, queue: BuildQueue, ops: OpsJobs) -> Services:
        """Every service around one runtime, its build queue and its operations jobs."""
        telemetry = Telemetry(ops.metrics)
        server = rt.cfg.server
        slots = StreamSlots(server.sse_max_streams, server.sse_max_streams_per_ip)
        telemetry.streams_open(lambda: slots.open)
        return cls(access=Access(rt, telemetry), telemetry=telemetry, builds=Builds(rt, queue),
                   logs=BuildLogs(rt, slots, telemetry), publisher=Publisher(rt, queue), history=HistoryView(rt),
                   operations=Operations(rt, ops), plans=Plans(rt), callbacks=PagesCallbacks(rt, telemetry))

    def dependencies(self) -> dict[str, Provide]:
        """One `Provide` per service, registered once at the app: the same instance for every request."""
        return {name: _constant(getattr(self, name)) for name in self.__dataclass_fields__}


def _constant(value: object) -> Provide:
    # A plain function returning the instance (no I/O), so no thread hop is wanted.
    def provide() -> object:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def build_app(cfg: Config, services: Services) -> Litestar:
    """The Litestar app: the API's routes and, with [ui] enabled, the dashboard's router and its templates."""
    extra: list[Any] = []
    templates = None
    if cfg.ui.enabled:  # the dashboard; the preview Host wrapper and the public listener never reach it
        from daemon.ui.router import template_config, ui_router

        extra.append(ui_router(cfg))
        templates = template_config()
    return create_app(cfg, services.access, services.dependencies(), extra=extra, template_config=templates)


def build_ops_jobs(rt: Runtime, queue: BuildQueue) -> OpsJobs:
    """The operations jobs from the runtime's edges, each given only what it uses (daemon/ops imports no runtime),
    and the scheduler that runs them; the build hooks feed the metrics."""
    cfg, layout, backlog = rt.cfg, rt.layout, rt.sync_loop.outbox
    m = Metrics()
    m.install(rt.events)
    cleanup = Cleanup(cfg, layout, rt.outbox, rt.kv, rt.deployer, local_objects=rt.local_objects,
                      remote_objects=rt.remote_objects, sync_loop=rt.sync_loop, ledger=rt.ledger)
    alerts = Alerts(cfg, layout.data_dir, m)
    # The end of a repair loop goes to the alert webhook too (README "Repair": the answer and the webhook say why).
    rt.events.subscribe(RepairEnded, lambda e: alerts.post(repair.webhook_body(e.version)))
    sweep = RetentionSweep(layout.previews, rt.deployer, rt.replica, rt.fleet, sync_interval_s=cfg.sync.interval_s)
    scheduler = Scheduler(poll_deployments=lambda: deploywatch.poll_due(rt), poll_interval_s=cfg.deploy.poll_interval_s,
                          cleanup=cleanup, alerts=alerts, sweep=sweep,
                          retry_aliases=lambda: livealias.retry_due(rt))
    status = Status(cfg.paths, layout, backlog, queue, rt.jobs, sandbox_layer=rt.sandbox_layer, generator=rt.generator,
                    deployer=rt.deployer)
    return OpsJobs(metrics=m, gauges=StateGauges(m, cfg, layout, backlog, rt.fleet, queue), alerts=alerts,
                   cleanup=cleanup, sweep=sweep, status=status, scheduler=scheduler)


@dataclass(frozen=True)
class Wired:
    """Everything `wire` built; the caller starts the jobs (`runtime.jobs`) and serves `asgi` (and `public_asgi`)."""

    runtime: Runtime
    pipeline: Pipeline
    queue: BuildQueue
    scheduler: Scheduler
    ops: OpsJobs  # the operations jobs (metrics, alerts, cleanup, sweep, status); `scheduler` runs them
    services: Services
    app: Litestar
    asgi: logging_setup.RequestIdMiddleware  # the API listener: previews by Host, the pointer fast path, the app
    public_asgi: logging_setup.RequestIdMiddleware | None  # with [server] preview_port: previews only


def wire(cfg: Config, *, immediate: bool = False, **edges: Any) -> Wired:
    """Build the daemon from its config. ``immediate``: builds run inline when queued (Huey's immediate mode, for
    tests). ``edges`` replace configured ones (see `Runtime`)."""
    rt = Runtime(cfg, store_tools=lambda layout: PnpmStoreTools(cfg, layout), **edges)
    pipeline = Pipeline(rt)
    queue = BuildQueue(rt.data_dir / "queue.db", pipeline.run, immediate=immediate)
    pipeline.on_outcome = lambda version_id: repair.on_outcome(rt, version_id)  # the repair loop ([repair])
    pipeline.enqueue = queue.enqueue
    ops = build_ops_jobs(rt, queue)
    services = Services.build(rt, queue, ops)
    app = build_app(cfg, services)
    previews = rt.layout.previews
    # A fleet droplet serves previews it never built (fetched from the bucket) and live alias hosts.
    resolver = PreviewResolver(rt, cfg.fleet.preview_cache_mb * 2**20) \
        if rt.fleet.previews_from_any_droplet else None
    asgi = logging_setup.RequestIdMiddleware(
        make_preview_asgi(PointerFastPath(app, services.publisher), previews,  # type: ignore[arg-type]
                          cfg.server.preview_domain, resolver))
    public_asgi = logging_setup.RequestIdMiddleware(
        make_public_asgi(previews, cfg.server.preview_domain, resolver)) if cfg.server.preview_port else None
    return Wired(rt, pipeline, queue, ops.scheduler, ops, services, app, asgi, public_asgi)
