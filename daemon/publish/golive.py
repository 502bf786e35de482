"""The only go-live path: a build, a rollback, a confirmed deployment and undo/redo all make a version live here.

Going live is one transaction (row deployed, the project's live version, the KV pointer queued:
`versions.go_live`), then the pointer write is pushed at once to a local KV. Each deployed version then gets its
history recorded (dist window, recovery pack) and one render check.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.history import HistoryError
from daemon.publish import artifacts, livealias, screens

if TYPE_CHECKING:
    from daemon.runtime import Runtime
    from sync.kv.base import KV
    from sync.loop import SyncLoop

log = logging.getLogger("previewd.publish")

DIST_WINDOW = 3  # build output is kept in git for this many newest versions per project


def _ttl_s(rt: Runtime) -> int:
    return rt.cfg.kv.ttl_days * 86400


def make_live(rt: Runtime, version_id: str, *, in_transaction: bool = False, **fields: Any) -> ProjectVersion:
    """Mark a deployed version live (row, project, KV pointer) and push the pointer out.

    `in_transaction`: the caller holds a write transaction that must commit first, so it calls
    `pointer_moved` itself after the commit (pushing the pointer needs the write lock).
    """
    v = versions.go_live(rt.outbox, version_id, _ttl_s(rt), **fields)
    if not in_transaction:
        pointer_moved(rt.kv, rt.sync_loop)
    return v


def walk(rt: Runtime, user_id: str, project_id: str, direction: str) -> ProjectVersion:
    """Undo or redo: the version on top of that stack goes live again, no rebuild."""
    rt.fleet.admit(user_id, project_id)
    v = versions.walk(rt.outbox, user_id, project_id, direction, _ttl_s(rt))
    pointer_moved(rt.kv, rt.sync_loop)
    follow_alias(rt, user_id, project_id)
    return v


def follow_alias(rt: Runtime, user_id: str, project_id: str) -> None:
    """On Cloudflare, queue the live branch's redeploy when the pointer left its newest deployment (README
    "Fleet"); the pointer itself has moved already."""
    if livealias.enabled(rt):
        _later(rt, lambda: livealias.follow(rt, user_id, project_id))


def pointer_moved(kv: KV, sync_loop: SyncLoop) -> None:
    """After a pointer move commits: a local KV is written at once (reads right after must see it);
    a remote one is left to the sync loop, so no request waits on the network."""
    if kv.answers_locally:
        try:
            sync_loop.drain_now("kv")
        except Exception:
            log.warning("local KV write failed; the sync loop retries it", exc_info=True)
    sync_loop.nudge()


def record_history(rt: Runtime, v: ProjectVersion, dist: tuple[Path, str] | None = None) -> None:
    """For a version deployed or uploaded: commit its build output (`dist` = the staged copy's root, output dir:
    daemon/project/staging.py, never the live workspace) under refs/dist, slide the dist window and prune, and store
    the recovery pack of its new objects."""
    repo = rt.repo(v.user_id, v.project_id)
    with repo.writing():
        if dist is not None:
            try:
                repo.snapshot_dist(dist[0], v.version_id, dist[1])
            except HistoryError as exc:  # output over its budget: no dist ref, the recovery pack still goes out
                if exc.code != "history_limit":
                    raise
                log.warning("dist snapshot of %s skipped: %s", v.version_id, exc.message)
        keep = [x.version_id for x in ProjectVersion.select(ProjectVersion.version_id)
                .where((ProjectVersion.user_id == v.user_id) & (ProjectVersion.project_id == v.project_id)
                       & ProjectVersion.status.in_(("deployed", "deploying")))
                .order_by(ProjectVersion.version_id.desc()).limit(DIST_WINDOW)]
        if repo.slide_dist_window(keep):
            try:
                repo.prune()
            except HistoryError as exc:  # over the project's budget: its old output stays until a cleanup can
                if exc.code != "history_limit":
                    raise
                log.warning("prune of %s/%s skipped: %s", v.user_id, v.project_id, exc.message)
        if repo.has_version(v.version_id):
            base = v.parent_version_id if v.parent_version_id and repo.has_version(v.parent_version_id) else None
            key = rt.layout.pack_key(v.user_id, v.project_id, base, v.version_id)
            artifacts.store_object(rt, key, repo.export_pack(base, v.version_id), "application/zip")
    rt.sync_nudge()


def check_render(rt: Runtime, version_id: str, *, inline: bool) -> None:
    """The one render-check policy: each version is checked once, when it first goes live.

    `inline` runs it on the caller's thread (the build worker, so the browser never competes with a build);
    otherwise it goes to the after-live pool and the caller returns at once.
    """
    if not rt.cfg.render.enabled:
        return
    if inline:
        _render_once(rt, version_id)
    else:
        _later(rt, lambda: _render_once(rt, version_id))


def _render_once(rt: Runtime, version_id: str) -> None:
    v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
    if v is None or v.render_status is not None:
        return
    t0 = time.monotonic()
    try:
        screens.check_version(rt, version_id)
        versions.update(rt.outbox, version_id, add_timings={"render": int((time.monotonic() - t0) * 1000)})
    except Exception:
        log.exception("render check of %s failed", version_id)


def _later(rt: Runtime, fn: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the pool refuses work while shutting down
        rt.after_pool.submit(fn)


def after_live(rt: Runtime, v: ProjectVersion, *, dist: tuple[Path, str] | None = None, inline: bool,
               first: Callable[[], None] | None = None) -> None:
    """Work that must not delay the answer: `first` (a build's checks still running under `record`, recorded
    when they end), history bookkeeping, then the render check when it is live.

    `inline` does it on the caller's thread (the build worker, before it takes the next build); otherwise it is
    queued on the after-live pool (an API request that made a version live returns first).
    """
    # A fleet droplet keeps the project's lease until its recovery pack is queued for the bucket.
    rt.fleet.hold(v.user_id, v.project_id)

    def run() -> None:
        if first is not None:
            try:
                first()
            except Exception:
                log.exception("after-live step failed for %s", v.version_id)
        try:
            record_history(rt, v, dist)
        except Exception:
            log.exception("post-deploy bookkeeping failed for %s", v.version_id)
        finally:
            rt.fleet.unhold(v.user_id, v.project_id)
        if v.status == "deployed" and rt.cfg.render.enabled:
            _render_once(rt, v.version_id)
        if livealias.enabled(rt):
            try:
                livealias.follow(rt, v.user_id, v.project_id)  # e.g. a build that did not go live
            except Exception:
                log.exception("live alias check failed for %s", v.version_id)

    if inline:
        run()
    else:
        _later(rt, run)


def drain_after(rt: Runtime) -> None:
    """Wait until the after-live work queued so far is done (the pool runs one job at a time, in order)."""
    with contextlib.suppress(RuntimeError):
        rt.after_pool.submit(lambda: None).result()
