"""Retention is final: a preview the cleanup deletes is deleted everywhere, and stays deleted.

The version row carries the decision (`preview_deleted_at`, the tombstone), written and replicated before anything
is removed; then the deployment, and at last the row's preview URL. A run that stops part-way leaves a tombstoned
row that still names its URL, which the next run finds by its state and finishes. Every droplet serving previews
from the object store asks the replica about the previews it holds (`sweep`) and drops the tombstoned ones; its
resolver refuses them (daemon/publish/previewfetch.py), so nothing fetches them back from the bucket.

The artifact zip stays: it is the version's snapshot (fast rollback to it builds a new version with a new
preview), kept by the seed's own rules: archived after `archive_after_days`, deleted with the row.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.core.ids import valid_version_id

if TYPE_CHECKING:
    from pathlib import Path

    from peewee import Expression

    from daemon.core.versions import OutboxWriter
    from daemon.deployers.base import Deployer
    from daemon.fleet.seam import Fleet
    from sync.replica.base import Replica

log = logging.getLogger("previewd.retention")

SWEEP_TICKS = 10  # the sweep runs every this many sync ticks, between 1 s and 60 s apart
_ASK_BATCH = 500


def pending(cutoff: datetime) -> Expression:
    """Rows whose preview the retention deletes, or has not finished deleting: by state (deployed, old enough,
    and not tombstoned yet, or tombstoned with its deployment not yet confirmed gone), never by a URL alone."""
    pv = ProjectVersion
    return ((pv.status == "deployed") & (pv.created_at <= cutoff)
            & (pv.preview_deleted_at.is_null() | pv.preview_url.is_null(False)))


def delete_preview(outbox: OutboxWriter, deployer: Deployer, v: ProjectVersion, now: datetime,
                   deployment_id: str | None) -> None:
    """Tombstone the row (replicated with it, so every droplet learns it), remove the deployment, then the URL
    (the mark that this droplet's part is done)."""
    if v.preview_deleted_at is None:
        v = versions.update(outbox, v.version_id, preview_deleted_at=now)
    if deployment_id:
        deployer.delete(deployment_id)
    if v.preview_url is not None:
        versions.update(outbox, v.version_id, preview_url=None)


# -- every droplet: drop what the fleet deleted -------------------------------------------------------------

def _held(previews: Path) -> dict[str, str]:
    """version id -> deployment label of each preview this droplet holds in its previews dir."""
    held: dict[str, str] = {}
    try:
        entries = list(os.scandir(previews))
    except FileNotFoundError:
        return held
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        vid = entry.name.rsplit("-", 1)[-1].upper()
        if valid_version_id(vid):
            held[vid] = entry.name
    return held


def sweep_interval_s(sync_interval_s: float) -> float:
    """Seconds between sweeps: SWEEP_TICKS sync ticks, at least 1 s, at most 60 s."""
    return max(1.0, min(60.0, SWEEP_TICKS * sync_interval_s))


class RetentionSweep:
    """The sweep of one droplet: drops the previews it holds whose version the retention deleted (anywhere)."""

    def __init__(self, previews: Path, deployer: Deployer, replica: Replica | None, fleet: Fleet, *,
                 sync_interval_s: float) -> None:
        """`previews`: the previews dir; `replica`: None off Postgres; `fleet`: whether previews come from any
        droplet (a fleet's) or this one only."""
        self.previews = previews
        self.deployer = deployer
        self.replica = replica
        self.fleet = fleet
        self.interval_s = sweep_interval_s(sync_interval_s)

    @property
    def scheduled(self) -> bool:
        """Whether the scheduler runs it: on a fleet droplet serving local previews."""
        return self.fleet.previews_from_any_droplet and self.replica is not None and self.deployer.serves_previews

    def sweep(self) -> list[str]:
        """Drop every preview this droplet holds whose version is tombstoned, here or in the replica (the fleet's
        other droplets deleted it); returns the labels dropped."""
        held = _held(self.previews)
        if not held:
            return []
        ids = sorted(held)
        dead: set[str] = set()
        for i in range(0, len(ids), _ASK_BATCH):
            chunk = ids[i:i + _ASK_BATCH]
            dead |= {str(r.version_id) for r in ProjectVersion.select(ProjectVersion.version_id).where(
                ProjectVersion.version_id.in_(chunk) & ProjectVersion.preview_deleted_at.is_null(False))}
            if self.replica is not None:
                dead |= set(self.replica.deleted_previews(chunk))
        dropped: list[str] = []
        for vid in sorted(dead):
            label = held[vid]
            self.deployer.delete(label)
            dropped.append(label)
            log.info("preview %s dropped: its version %s was deleted by the retention", label, vid)
        return dropped

    def run(self) -> None:
        """The scheduled run: `sweep`, a failure logged (Postgres away: the next run asks again)."""
        try:
            self.sweep()
        except Exception:
            log.warning("retention sweep failed", exc_info=True)
