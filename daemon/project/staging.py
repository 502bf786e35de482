"""A build's output crosses out of the workspace once: right after the build step it is exported (sandbox.export,
the one fd-based walker) into `tmp/out-<versionId>/<output dir>`, a directory no build step can see. The artifact
zip, the deployer and the dist commit in git all read that copy; checks still running under `record` may change the
workspace as they like. The pipeline's `run` owns the copy and removes it on every exit path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.project.failures import BuildFailed
from sandbox import export, safepath

if TYPE_CHECKING:
    from daemon.core.config import Config
    from daemon.runtime import Runtime

# Cloudflare Pages' own limits per deployment; every preview is held to them, wherever it is served.
MAX_ENTRIES = 20_000
MAX_FILE_BYTES = 25 * 2**20
_REASONS = {"invalid_name": "invalid_output", "too_big": "output_limit", "too_many": "output_limit",
            "no_dir": "no_output"}


def caps(cfg: Config) -> export.Caps:
    """The caps on one version's output, wherever it is copied or unpacked: apparent bytes (`[limits] output_mb`),
    files and directories, bytes per file."""
    return export.Caps(total_bytes=cfg.limits.output_mb * 2**20, entries=MAX_ENTRIES, file_bytes=MAX_FILE_BYTES)


def _name(version_id: str) -> str:
    return f"out-{version_id}"


def root(rt: Runtime, version_id: str) -> Path:
    """The staging root of a version: its output dir lies below at the same relative path as in the workspace."""
    return rt.layout.tmp / _name(version_id)


def stage(rt: Runtime, version_id: str, workspace: Path, out_rel: str, log: Callable[[str], None]) -> export.Report:
    """Export workspace/out_rel into the version's staging root; BuildFailed (invalid_output naming the file,
    output_limit, no_output) when it cannot cross. A previous copy of the same version is replaced."""
    parts = out_rel.split("/")
    discard(rt, version_id)
    parent = safepath.ensure_dir(rt.data_dir, ["tmp", _name(version_id), *parts[:-1]], mode=0o700)
    try:
        return export.export_tree(workspace, parts, parent / parts[-1], caps(rt.cfg), log)
    except export.Refused as exc:
        where = f"{out_rel}/{export.shown(exc.rel)}" if exc.kind != "no_dir" else f"{out_rel}/"
        raise BuildFailed(_REASONS[exc.kind], f"output {where}: {exc.why}") from None


def sweep(rt: Runtime) -> int:
    """At start-up, before the worker runs: remove the staged copies a killed daemon left; returns how many."""
    n = 0
    if rt.layout.tmp.is_dir():
        for entry in os.scandir(rt.layout.tmp):
            if entry.name.startswith("out-"):
                safepath.remove_tree(rt.data_dir, ["tmp", entry.name])
                n += 1
    return n


def discard(rt: Runtime, version_id: str) -> None:
    """Remove a version's staging copy (missing is fine)."""
    safepath.remove_tree(rt.data_dir, ["tmp", _name(version_id)])
