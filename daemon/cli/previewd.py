"""`previewd`: serve the daemon, check the machine (doctor), print the example config."""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from daemon.cli.options import global_options
from daemon.core.config import ConfigError, load, render_example


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    try:
        return load(args.config)
    except ConfigError as exc:
        print(f"previewd: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def doctor_report(cfg) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """What this machine offers the daemon: toolchain, sandbox layer and isolation, data dir."""
    import sandbox
    from daemon.build import toolchain

    report: dict[str, object] = {"config": cfg.source, "data_dir": str(cfg.data_dir)}
    try:
        tc = toolchain.resolve(cfg.paths.node, cfg.paths.pnpm)
        report["node"] = {"path": tc.node, "version": tc.node_version}
        report["pnpm"] = {"path": tc.pnpm, "version": tc.pnpm_version, "pinned": toolchain.PINNED_PNPM}
    except RuntimeError as exc:
        report["toolchain_error"] = str(exc)
    report["sandbox"] = sandbox.probe()
    chromium = shutil.which(cfg.render.chromium)
    report["render"] = {
        "enabled": cfg.render.enabled,
        "chromium": chromium or f"{cfg.render.chromium!r} not found: render checks will record 'unavailable' "
                                "(install Debian's chromium, or set [render] chromium)",
    }
    report["generator"] = cfg.generator.backend
    report["deployer"] = cfg.deploy.backend
    report["kv"] = cfg.kv.backend
    report["objects"] = cfg.objects.backend
    report["replica"] = cfg.replica.backend
    return report


def parser() -> argparse.ArgumentParser:
    """`previewd`'s command line; `--config` goes before or after the subcommand."""
    p = argparse.ArgumentParser(prog="previewd", description="Prompt-to-preview build daemon")
    common = global_options(p, {"--config": "TOML config file (default: $PREVIEWD_CONFIG, else built-in defaults)"})
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", parents=[common], help="run the daemon in the foreground")
    sub.add_parser("doctor", parents=[common], help="report toolchain, sandbox layer and isolation features")
    sub.add_parser("check-config", parents=[common], help="validate the config and exit")
    sub.add_parser("config-example", parents=[common], help="print config.example.toml")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `previewd` console script."""
    args = parser().parse_args(argv)
    if args.cmd == "config-example":
        sys.stdout.write(render_example())
        return 0
    cfg = _load(args)
    if args.cmd == "check-config":
        print(f"config ok ({cfg.source})")
        return 0
    if args.cmd == "doctor":
        print(json.dumps(doctor_report(cfg), indent=2, default=str))
        return 0
    from daemon.cli.serve import serve

    serve(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
