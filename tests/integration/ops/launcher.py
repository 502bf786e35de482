"""`previewd serve` with the operations wiring applied (what server.py does once the lead wires it), for live tests."""

from __future__ import annotations

from daemon import alerts, cleanup, logging_setup, metrics, ops_api
from daemon.app import create_app
from daemon.config import load
from daemon.preview_server import make_preview_asgi
from daemon.server import Daemon


def wire(d: Daemon) -> None:
    """The wiring lines, in the order server.py would run them."""
    metrics.install_metrics(d.rt)
    cleanup.register(d.scheduler.aps, d.rt)
    alerts.register(d.scheduler.aps, d.rt)
    d.app = create_app(d.rt, d.queue, ops_api.HANDLERS)
    d.asgi = logging_setup.RequestIdMiddleware(
        make_preview_asgi(d.app, d.rt.data_dir / "previews", d.cfg.server.preview_domain))  # type: ignore[arg-type]


def main() -> None:
    import uvicorn

    cfg = load()
    logging_setup.configure(cfg.server.log_level, secrets=cfg.secrets.values())
    d = Daemon(cfg)
    wire(d)
    d.start()
    try:
        uvicorn.run(d.asgi, host=cfg.server.host, port=cfg.server.port, log_level=cfg.server.log_level,
                    access_log=False, lifespan="on", timeout_graceful_shutdown=10, log_config=None)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
