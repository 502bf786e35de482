"""`previewd`: serve the daemon, check the machine (doctor), print the example config."""

from __future__ import annotations

import argparse
import json
import os
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
    from daemon.project import isolation, toolchain

    report: dict[str, object] = {"config": cfg.source, "data_dir": str(cfg.data_dir)}
    try:
        tc = toolchain.resolve(cfg.paths.node, cfg.paths.pnpm)
        report["node"] = {"path": tc.node, "version": tc.node_version}
        report["pnpm"] = {"path": tc.pnpm, "version": tc.pnpm_version, "pinned": toolchain.PINNED_PNPM}
    except RuntimeError as exc:
        report["toolchain_error"] = str(exc)
    report["sandbox"] = sandbox.probe()
    conf = isolation.confinement(cfg)
    iso: dict[str, object] = {**conf.as_dict(), "generated_code_runs_as": isolation.code_user(cfg) or
                              f"the daemon's uid {os.geteuid()}"}
    if not conf.allowed:
        iso["ERROR"] = f"builds will be refused (sandbox_unavailable): {conf.why}; fix: {conf.fix}"
    if not conf.confined:
        from dataclasses import asdict

        from sandbox import userns

        blocked = userns.restrictions(bwrap=shutil.which("bwrap") or "/usr/bin/bwrap")
        if blocked:
            iso["user_namespaces_restricted_by"] = [asdict(r) for r in blocked]
    report["isolation"] = iso
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
    sub.add_parser("hash-password", parents=[common],
                   help="read a dashboard password on stdin (or a prompt) and print its [ui] password_hash")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `previewd` console script."""
    args = parser().parse_args(argv)
    if args.cmd == "config-example":
        sys.stdout.write(render_example())
        return 0
    if args.cmd == "hash-password":
        return _hash_password()
    cfg = _load(args)
    if args.cmd == "check-config":
        print(f"config ok ({cfg.source})")
        return 0
    if args.cmd == "doctor":
        print(json.dumps(doctor_report(cfg), indent=2, default=str))
        return 0
    _harden(cfg)
    from daemon.cli.serve import serve

    serve(cfg)
    return 0


def _hash_password() -> int:
    """The `[ui] password_hash` line for a password typed at a prompt (or piped on stdin)."""
    import getpass

    from daemon.ui.access import hash_password

    password = getpass.getpass("dashboard password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("previewd: the password must not be empty", file=sys.stderr)
        return 2
    print(f'password_hash = "{hash_password(password)}"')
    return 0


def _harden(cfg) -> None:  # type: ignore[no-untyped-def]
    """Before serving: non-dumpable in every mode, a private data dir and secret, the toolchain, and a loud word
    on isolation."""
    import logging

    from daemon.core import hardening, logging_setup
    from daemon.core.config import hmac_secret_path
    from daemon.project import isolation

    logging_setup.configure(cfg.server.log_level, secrets=cfg.secrets.values())
    log = logging.getLogger("previewd")
    if not hardening.make_non_dumpable():
        log.warning("could not set PR_SET_DUMPABLE=0; processes of the daemon's uid may read its memory and env")
    try:
        for note in hardening.secure_data_dir(cfg.data_dir, hmac_secret_path(cfg)):
            log.warning(note)
    except (hardening.HardeningError, OSError) as exc:
        print(f"previewd: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from daemon.project import toolchain

    try:
        # Resolved (and cached) now, so the first build does not wait for `node --version` and `pnpm --version`.
        tc = toolchain.resolve(cfg.paths.node, cfg.paths.pnpm)
        log.info("toolchain: node %s, pnpm %s", tc.node_version, tc.pnpm_version)
    except RuntimeError as exc:
        log.warning("builds will fail until this is fixed: %s", exc)
    conf = isolation.confinement(cfg)
    if not conf.allowed:
        log.error("BUILDS WILL BE REFUSED (sandbox_unavailable): the isolation layer is missing: %s. To fix: %s",
                  conf.why, conf.fix)
    elif not conf.confined:
        log.warning("%s (%s)", isolation.UNCONFINED_WARNING, conf.why)


if __name__ == "__main__":
    raise SystemExit(main())
