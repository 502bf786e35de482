"""Warm start: a droplet joining the fleet fills its pnpm store with the fleet's hot packages (from the shared store
cache in the bucket, sync/storecache.py) before it takes builds, then publishes what its own installs add.

One thread does both, in order: first the warm-up (the droplet answers 503 `warming` to builds and to `/healthz`
until it is done or `[fleet] warm_timeout_s` passed), then, for as long as the daemon runs, the lockfiles its
installs wrote, published in the background (never on a build's path) and the store held to its budget.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from daemon.core.background import Job
from sync.storecache import Package, StoreCache, lockfile_packages, store_bytes

log = logging.getLogger("previewd.warmstart")
BUDGET_CHECK_S = 600.0

# name@version -> integrity, as the registry's metadata gives it (daemon/project/hotset.py asks pnpm for it).
RegistryIntegrities = Callable[[list[Package]], Mapping[str, str]]


class WarmStart:
    """The warm-up state of this droplet, and its store-cache publisher."""

    def __init__(self, cache: StoreCache, *, resolve: RegistryIntegrities | None, budget_bytes: int,
                 timeout_s: float, prune: Callable[[], None] | None = None) -> None:
        self.cache = cache
        self.resolve = resolve
        self.budget_bytes = budget_bytes
        self.timeout_s = timeout_s
        self.prune = prune
        self.state = "pending"  # pending -> warming -> warm | failed (builds admitted either way)
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.report: dict[str, Any] = {}
        self.published = 0
        self.publish_refused = 0
        self._publishing = False
        self._budget_checked = float("-inf")
        self._lockfiles: queue.Queue[str | None] = queue.Queue(maxsize=256)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def warming(self) -> bool:
        """True while this droplet should take no build: warming up and not yet past the timeout."""
        if self.state not in ("pending", "warming"):
            return False
        return self.started_at is None or time.monotonic() - self.started_at < self.timeout_s

    def status(self) -> dict[str, Any]:
        """For `/healthz?detail=1` and `daemonctl fleet`."""
        out: dict[str, Any] = {"state": "timed_out" if self.state == "warming" and not self.warming else self.state,
                               "published": self.published, "publishRefused": self.publish_refused,
                               "publishPending": self._lockfiles.qsize() + int(self._publishing)}
        if self.finished_at is not None and self.started_at is not None:
            out["seconds"] = round(self.finished_at - self.started_at, 2)
        out.update(self.report)
        return out

    # -- the warm-up ---------------------------------------------------------------------------------------
    def _timed_resolve(self, packages: list[Package]) -> tuple[Mapping[str, str], float]:
        t = time.monotonic()
        assert self.resolve is not None
        return self.resolve(packages), time.monotonic() - t

    def warm(self) -> None:
        """Import the fleet's hot set, within the budget and against the registry's integrities."""
        self.state, self.started_at = "warming", time.monotonic()
        try:
            room = max(0, self.budget_bytes - store_bytes(self.cache.local.root))
            hot, left = self.cache.hot_set(room)
            # A restarted droplet already holds most of them: only the missing ones are asked of the registry.
            packages = [h.package for h in hot if not self.cache.local.index_path(h.package).exists()]
            with tempfile.TemporaryDirectory(dir=self.cache.scratch) as td, ThreadPoolExecutor(1) as ex:
                # The registry's word and the bucket's bytes are fetched at once; nothing enters the store before
                # both agree.
                t0 = time.monotonic()
                asked = ex.submit(self._timed_resolve, packages) if packages and self.resolve else None
                staged, refused = self.cache.stage(packages, Path(td))
                stage_s = time.monotonic() - t0
                trusted, resolve_s = asked.result() if asked is not None else ({}, 0.0)
                rep = self.cache.install_staged(staged, trusted, room)
            rep.refused.update(refused)
            rep.over_budget += left
            counts = {k: v for k, v in rep.as_dict().items() if k != "refused"}
            self.report = {"hot": len(hot), "missing": len(packages), **counts, "refused": len(rep.refused),
                           "registrySeconds": round(resolve_s, 2), "bucketSeconds": round(stage_s, 2)}
            for pkg_id, why in list(rep.refused.items())[:20]:
                log.warning("warm start: %s refused: %s", pkg_id, why)
            log.info("warm start: %d hot packages, %d missing here, %d imported, %d refused, %d over budget",
                     len(hot), len(packages), len(rep.done), len(rep.refused), rep.over_budget)
            self.state = "warm"
        except Exception as exc:  # a cold store still builds: admit builds, say why
            log.warning("warm start failed (builds are taken with a cold store): %s", exc, exc_info=True)
            self.report = {"error": str(exc)[:300]}
            self.state = "failed"
        finally:
            self.finished_at = time.monotonic()

    # -- publishing ----------------------------------------------------------------------------------------
    def installed(self, lockfile: str) -> None:
        """An install of this droplet wrote this lockfile (the daemon read it right after pnpm, before any
        generated code ran): publish its packages from the store, later, on this job's thread."""
        self._publishing = True  # counted as pending from now: the job may not have taken it yet
        with contextlib.suppress(queue.Full):  # full: the next install names the hot packages again
            self._lockfiles.put_nowait(lockfile)

    def publish_now(self, lockfile: str) -> None:
        """Publish one lockfile's packages at once (the worker's own step, and tests)."""
        rep = self.cache.publish(lockfile_packages(lockfile))
        self.published += len(rep.done)
        self.publish_refused += len(rep.refused)
        for pkg_id, why in list(rep.refused.items())[:20]:
            log.warning("store cache: %s not published: %s", pkg_id, why)
        # The store's size is a walk of every file: measured at most every BUDGET_CHECK_S, not after each build.
        if self.prune is not None and time.monotonic() - self._budget_checked >= BUDGET_CHECK_S:
            self._budget_checked = time.monotonic()
            if store_bytes(self.cache.local.root) > self.budget_bytes:
                self.prune()

    def _run(self) -> None:
        self.warm()
        while not self._stop.is_set():
            self._publishing = False
            item = self._lockfiles.get()
            if item is None:
                return
            self._publishing = True
            try:
                self.publish_now(item)
            except Exception:  # the loop never dies: the next lockfile tries again
                log.warning("store cache publish failed", exc_info=True)
                self._stop.wait(5)

    def start(self) -> None:
        self.state = "warming"
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="previewd-warmstart", daemon=True)
        self._thread.start()

    def stop(self, grace: float) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._lockfiles.put_nowait(None)
        if self._thread is not None:
            self._thread.join(max(1.0, grace))

    def job(self) -> Job:
        return Job("warm-start", "own thread", "at start (warm-up), then per install (publish)",
                   "stop after the package being moved", start=self.start, stop=self.stop,
                   alive=lambda: self._thread is not None and self._thread.is_alive())
