"""Previews from any droplet: a local deployment this droplet never built is fetched from the object store
(its artifact zip), kept in a size-bounded LRU; a project's live alias host resolves to its live deployment.

The preview server calls `PreviewResolver` only on a miss (no such directory) or for an alias host, in a thread.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core import versions
from daemon.core.db import Project, ProjectVersion, database
from daemon.core.ids import valid_version_id
from daemon.deployers.base import DeployRequest
from daemon.deployers.previewnames import ALIAS_SEP, alias_ids, alias_label, deployment_id_for
from daemon.project import staging
from daemon.publish.artifacts import extract_artifact

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.previews")

_MISS_TTL_S = 5.0  # a host that named nothing is not looked up again for this long (hosts are client-chosen)
_MISS_MAX = 4096
# Files kept in the fetched previews at most (beside the bytes cap): a preview of many empty files costs inodes and
# directory entries, not bytes. Five previews at Pages' limit of files each.
CACHE_FILES = 5 * staging.MAX_ENTRIES


class PreviewResolver:
    """Label -> the directory label to serve now (fetched when needed), or None (404)."""

    def __init__(self, rt: Runtime, cap_bytes: int, cap_files: int = CACHE_FILES) -> None:
        self.rt = rt
        self.cap_bytes = cap_bytes
        self.cap_files = cap_files
        # label -> (bytes, files and dirs), least recently used first
        self._fetched: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._misses: dict[str, float] = {}
        self._lock = threading.Lock()
        self._label_locks: dict[str, threading.Lock] = {}
        self.fetches = 0
        self.evictions = 0

    def __call__(self, label: str) -> str | None:
        """The deployment to serve for ``label``; never raises (a failure is a 404 and a log line)."""
        now = time.monotonic()
        if self._misses.get(label, 0.0) > now:
            return None
        try:
            with database.connection_context():
                found = self._alias(label) if ALIAS_SEP in label else self._fetch(label)
        except Exception:
            log.warning("preview %s: lookup failed", label, exc_info=True)
            found = None
        if found is None:
            if len(self._misses) >= _MISS_MAX:
                self._misses.clear()
            self._misses[label] = now + _MISS_TTL_S
        return found

    # -- the live alias -----------------------------------------------------------------------------------
    def _alias(self, label: str) -> str | None:
        ids = self._project_of_alias(label)
        if ids is None:
            return None
        live = self._live_version(*ids)
        if live is None:
            return None
        dep = deployment_id_for(ids[1], live)
        if (self.rt.layout.previews / dep).is_dir():
            self._touch(dep)
            return dep
        return self._fetch(dep)

    def _project_of_alias(self, label: str) -> tuple[str, str] | None:
        """(user, project) whose alias label this is: local projects first, then the fleet's lease rows. A plain
        or escaped label names its ids; a hashed one must match exactly one known project (a collision is refused,
        never resolved to whichever came first)."""
        named = alias_ids(label)
        if named is not None and Project.get_or_none((Project.user_id == named[0])
                                                     & (Project.project_id == named[1])) is not None:
            return named
        known = {(p.user_id, p.project_id) for p in Project.select(Project.user_id, Project.project_id)}
        known |= set(self.rt.fleet.projects())
        if named is not None:
            return named if named in known else None
        found = [ids for ids in known if alias_label(*ids) == label]
        if len(found) > 1:
            log.error("live alias %s matches %d projects; refusing to serve it", label, len(found))
        return found[0] if len(found) == 1 else None

    def _live_version(self, user_id: str, project_id: str) -> str | None:
        """The live version: this droplet's own when it writes the project (or is alone), else the fleet's."""
        if (elsewhere := self.rt.fleet.live_elsewhere(user_id, project_id)) is not None:
            return elsewhere
        v = versions.live_version(user_id, project_id)
        return v.version_id if v is not None else None

    # -- fetching a deployment built elsewhere --------------------------------------------------------------
    def _fetch(self, label: str) -> str | None:
        if not self.rt.deployer.serves_previews or self.rt.remote_objects is None:
            return None
        vid = label.rsplit("-", 1)[-1].upper()
        if not valid_version_id(vid):
            return None
        with self._lock:
            lock = self._label_locks.setdefault(label, threading.Lock())
        with lock:
            if (self.rt.layout.previews / label).is_dir():
                self._touch(label)
                return label
            owner = self._owner(vid)
            if owner is None or deployment_id_for(owner[1], vid) != label:
                return None
            user_id, project_id, artifact_of = owner
            key = self.rt.layout.artifact_key(user_id, project_id, artifact_of)
            with tempfile.TemporaryDirectory(dir=self.rt.layout.tmp) as tmp:
                zip_path = Path(tmp) / "artifact.zip"
                try:
                    self.rt.remote_objects.get_file(key, zip_path)
                except Exception:
                    log.info("preview %s: no artifact %s in the object store", label, key)
                    return None
                out = Path(tmp) / "out"
                out.mkdir()
                try:
                    unpacked = extract_artifact(zip_path, out, staging.caps(self.rt.cfg))
                except (ValueError, OSError) as exc:
                    log.warning("preview %s: artifact %s refused: %s", label, key, exc)
                    return None
                self.rt.deployer.deploy(DeployRequest(out_dir=out, user_id=user_id, project_id=project_id,
                                                      version_id=vid, message="fetched preview"), lambda _l: None)
            self.fetches += 1
            log.info("preview %s fetched from the object store (%d bytes, %d files)", label, unpacked.bytes,
                     unpacked.files)
            with self._lock:
                self._fetched[label] = (unpacked.bytes, unpacked.entries)
            self._evict()
            return label

    def _owner(self, version_id: str) -> tuple[str, str, str] | None:
        """(user, project, version whose artifact zip it serves) of a deployed version: a fast rollback serves
        its target's artifact, so the chain of `rollback_of` is followed (a few steps at most)."""
        rec = self._record(version_id)
        if rec is None or rec["status"] != "deployed":
            return None
        artifact_of = version_id
        for _ in range(8):
            if not rec.get("rollback_of") or self.rt.remote_objects is None or self.rt.remote_objects.exists(
                    self.rt.layout.artifact_key(str(rec["user_id"]), str(rec["project_id"]), artifact_of)):
                break
            artifact_of = str(rec["rollback_of"])
            target = self._record(artifact_of)
            if target is None:
                break
            rec = {**target, "user_id": rec["user_id"], "project_id": rec["project_id"]}
        return str(rec["user_id"]), str(rec["project_id"]), artifact_of

    def _record(self, version_id: str) -> dict[str, object] | None:
        """The version's record, None when unknown or when the retention deleted its preview (a tombstone here
        or in the replica: the deciding droplet's row reaches Postgres first, ours may be stale)."""
        # A local row of a project another droplet writes now may be stale (deployed there since): ask Postgres.
        v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
        if v is not None and v.preview_deleted_at is not None:
            return None
        if v is not None and v.status == "deployed":
            rec: dict[str, object] | None = {"user_id": v.user_id, "project_id": v.project_id, "status": v.status,
                                             "rollback_of": v.rollback_of}
            if self.rt.replica is None or not self.rt.replica.deleted_previews([version_id]):
                return rec
            return None
        rec = self.rt.replica.get_version(version_id) if self.rt.replica is not None else None
        return None if rec is None or rec.get("preview_deleted_at") else rec

    def _touch(self, label: str) -> None:
        with self._lock:
            if label in self._fetched:
                self._fetched.move_to_end(label)

    def _evict(self) -> None:
        """Drop the least recently used fetched previews past either cap, bytes or files (never one this droplet
        built)."""
        with self._lock:  # the retention's sweep removed some (daemon/ops/retention.py): they hold no bytes now
            for gone in [lb for lb in self._fetched if not (self.rt.layout.previews / lb).is_dir()]:
                del self._fetched[gone]
        while True:
            with self._lock:
                total = sum(b for b, _ in self._fetched.values())
                files = sum(n for _, n in self._fetched.values())
                if (total <= self.cap_bytes and files <= self.cap_files) or len(self._fetched) <= 1:
                    return
                label, _ = self._fetched.popitem(last=False)
            self.evictions += 1
            try:
                self.rt.deployer.delete(label)
            except Exception:
                shutil.rmtree(self.rt.layout.previews / label, ignore_errors=True)

