"""`previewd serve`: one process holding the ASGI server, the build worker, the sync loop and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from daemon.core import logging_setup, versions
from daemon.core.background import Job
from daemon.core.config import Config
from daemon.ops import alerts
from daemon.project import staging
from daemon.publish import artifacts, deploywatch
from daemon.wiring import wire
from sandbox import orphans

log = logging.getLogger("previewd")


class AlreadyRunning(Exception):
    """Another daemon holds the data dir."""


class DataDirLock:
    """One daemon per data dir: an exclusive flock on <data_dir>/previewd.lock holding the owner's pid."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "previewd.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(f"another previewd (pid {owner}) is running on data dir {self.path.parent}") \
                from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Daemon:
    """The daemon the composition root (`daemon.wiring`) built, on a locked data dir; `start`/`stop` bracket the
    ASGI server's life."""

    def __init__(self, cfg: Config, *, immediate: bool = False, **edges: Any) -> None:
        """``immediate``: builds run inline when queued (Huey's immediate mode, for tests); no worker needed.
        ``edges`` replace configured ones (see `Runtime`)."""
        self.cfg = cfg
        self.lock = DataDirLock(cfg.data_dir)
        self.lock.acquire()
        wired = wire(cfg, immediate=immediate, **edges)
        self.rt, self.pipeline, self.queue, self.scheduler = wired.runtime, wired.pipeline, wired.queue, wired.scheduler
        self.ops, self.services, self.app, self.asgi = wired.ops, wired.services, wired.app, wired.asgi
        # The public listener's app: previews only, so a wildcard proxy in front of it never reaches the API.
        self.public_asgi = wired.public_asgi
        self.sync = self.rt.sync_loop
        self._declare_jobs()
        self.started_at = time.time()

    def start(self) -> None:
        """Recover what a dead process left, then start the worker, the sync loop and the scheduler."""
        orphans.kill_leftovers(self.rt.data_dir)
        self.rt.fleet.recover()
        failed, queued = versions.recover_interrupted(self.rt.outbox)
        staging.sweep(self.rt)  # staged output and unfinished zips of the builds it interrupted
        artifacts.drop_unfinished(self.rt, failed)
        resumed = deploywatch.resume(self.rt)
        if resumed:
            log.info("resumed waiting on %d unconfirmed deployments", resumed)
        for vid in failed:
            log.warning("version %s was interrupted by a restart; marked failed (interrupted)", vid)
        self.queue.reset(queued)
        self.rt.jobs.start()  # the lease keeper, the sync loop, the build worker, the scheduler
        log.info("previewd ready on %s (sandbox %s, generator %s, deployer %s)", self.cfg.base_url,
                 self.rt.sandbox_layer, self.rt.generator.name, self.rt.deployer.name)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop taking work; let a running build finish within the grace period, past it fail it as
        `interrupted`; flush what can be flushed of the outbox."""
        grace = self.cfg.server.shutdown_grace_s if grace_s is None else grace_s
        self.rt.jobs.stop(grace)  # last declared first: scheduler, worker, checks, after-live, sync, leases
        self.close()

    def _declare_jobs(self) -> None:
        """The daemon's jobs beside the runtime's own (declared after them, so stopped before them)."""
        jobs, pipeline, queue, scheduler = self.rt.jobs, self.pipeline, self.queue, self.scheduler

        def stop_checks(_grace: float) -> None:
            if not pipeline.pending_checks.drain(5):  # checks recorded after their version went live
                pipeline.cancel.set()
                pipeline.pending_checks.drain(30)

        def stop_worker(grace: float) -> None:
            stopper = threading.Thread(target=queue.stop, kwargs={"graceful": True}, name="previewd-stop")
            stopper.start()
            stopper.join(grace)
            if stopper.is_alive():
                log.warning("shutdown grace period (%.0fs) over; interrupting the running build", grace)
                pipeline.cancel.set()
                stopper.join(60)

        alert_state = self.ops.alerts
        jobs.declare(Job("alert-webhooks", "bounded pool", f"per alert firing or resolved ({alerts.WEBHOOK_THREADS} "
                         "threads)", f"drop unsent posts, wait for those being sent (each times out after "
                         f"{alerts.WEBHOOK_TIMEOUT_S:g} s)", stop=lambda _g: alert_state.stop(),
                         alive=alert_state.alive))
        pool = pipeline.warm
        jobs.declare(Job("warm-bundlers", "own thread", f"a reaper every few seconds; a bundler per recently built "
                         f"project (at most {pool.size}, stopped {pool.idle_s:g} s idle)",
                         "stop every warm bundler (after the build worker)", start=pool.start, stop=pool.close,
                         alive=pool.alive))
        jobs.declare(Job("checks", "own thread", "per build with type check or lint (one thread each; recorded "
                         "late under `record`)", "drain 5 s, then cancel and drain 30 s", stop=stop_checks,
                         alive=pipeline.pending_checks.alive))
        jobs.declare(Job("build-worker", "build worker", "queue (Huey on SQLite, polled every 20 ms)",
                         "finish the running build within the grace period, then cancel it (interrupted)",
                         start=queue.start, stop=stop_worker, alive=queue.alive))
        jobs.declare(Job("scheduler", "scheduler", ", ".join(scheduler.job_names()),
                         "shutdown without waiting (jobs are idempotent; the next start runs them again)",
                         start=scheduler.start, stop=lambda _g: scheduler.stop(), alive=scheduler.alive))

    def close(self) -> None:
        """Release what a never-started (or stopped) daemon holds: the runtime and the data-dir lock."""
        self.rt.close()
        self.lock.release()


class _Server:
    """Made lazily (uvicorn is imported only to serve): uvicorn's server minus its own signal handling, so one
    handler drives both listeners."""

    @staticmethod
    def make(app: Any, host: str, port: int, cfg: Config, lifespan: Literal["on", "off"]) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # _ShutdownSignals handles SIGTERM/SIGINT for every listener at once

        return Server(uvicorn.Config(app, host=host, port=port, log_level=cfg.server.log_level, access_log=False,
                                     lifespan=lifespan, timeout_graceful_shutdown=10, log_config=None,
                                     proxy_headers=bool(cfg.server.forwarded_allow_ips),
                                     forwarded_allow_ips=cfg.server.forwarded_allow_ips or None))


async def _serve_all(servers: list[Any]) -> None:
    """Run every listener in this loop; when one stops (a signal, or it could not bind), the others stop too."""

    async def run(server: Any) -> None:
        try:
            await server.serve()
        finally:
            for other in servers:
                other.should_exit = True

    await asyncio.gather(*(run(s) for s in servers))


def serve(cfg: Config) -> None:
    """Run the daemon in the foreground until SIGINT/SIGTERM: the API listener (with previews by Host), and with
    [server] preview_port a second, public listener that serves previews only."""
    logging_setup.configure(cfg.server.log_level, secrets=cfg.secrets.values())
    try:
        d = Daemon(cfg)
    except AlreadyRunning as exc:
        print(f"previewd: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if cfg.server.metrics_token_env and not cfg.secrets.metrics_token:
        log.warning("[server] metrics_token_env names %s, which is not set: /metrics needs a v2 signature",
                    cfg.server.metrics_token_env)
    d.start()
    servers = [_Server.make(d.asgi, cfg.server.host, cfg.server.port, cfg, "on")]
    if d.public_asgi is not None:
        servers.append(_Server.make(d.public_asgi, cfg.server.preview_host or cfg.server.host,
                                    cfg.server.preview_port, cfg, "off"))
        log.info("previews only, public: %s:%d; API private: %s:%d", cfg.server.preview_host or cfg.server.host,
                 cfg.server.preview_port, cfg.server.host, cfg.server.port)
    signals = _ShutdownSignals(servers)
    signals.install()
    try:
        # The first SIGTERM/SIGINT stops the listeners (no new connections, running requests finish); a second
        # one during our own shutdown below exits at once.
        asyncio.run(_serve_all(servers))
    finally:
        signals.stopping = True
        d.stop()
    log.info("previewd stopped")


class _ShutdownSignals:
    """Counts SIGTERM/SIGINT: the first stops the listeners and starts the graceful stop, the next one during it
    exits now (a second SIGINT while the listeners drain forces them closed, as uvicorn does)."""

    def __init__(self, servers: list[Any]) -> None:
        self.servers = servers
        self.count = 0
        self.stopping = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.count += 1
        if self.stopping and self.count >= 2:
            log.warning("second stop signal: exiting now")
            os._exit(1)
        for server in self.servers:
            if server.should_exit and signum == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True
