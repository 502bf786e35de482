"""The holder's side of the project leases: which this droplet holds, a renewer thread, release when idle.

The keeper never decides what a project's writes are; the daemon tells it (``is_idle``) and hears from it
(``on_lost``, when a renewal finds another droplet took the project over).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sync.lease import Lease, PgLeases

log = logging.getLogger("previewd.fleet")


class LeaseKeeper:
    """Leases held by one droplet; ``claim`` before a write, the renewer keeps them until idle."""

    def __init__(self, store: PgLeases, holder: str, ttl_s: float, *, release_idle_s: float = 5.0,
                 is_idle: Callable[[str, str], bool] = lambda _u, _p: True,
                 on_lost: Callable[[Lease], None] = lambda _l: None) -> None:
        self.store = store
        self.holder = holder
        self.ttl_s = ttl_s
        self.release_idle_s = release_idle_s
        self.is_idle = is_idle
        self.on_lost = on_lost
        self.draining = False
        self.takeovers = 0
        self.lost = 0
        self.catchups: list[float] = []  # seconds each catch-up after an acquisition took (newest last)
        self.refusals = 0  # stale writes refused (replica and KV), counted by the daemon's handlers
        self._held: dict[tuple[str, str], Lease] = {}
        self._epochs: dict[tuple[str, str], int] = {}  # last epoch per project, kept after release
        self._touched: dict[tuple[str, str], float] = {}
        self._deadline: dict[tuple[str, str], float] = {}  # monotonic: a paused process sees its lease lapse
        self._lock = threading.RLock()
        self._claim_locks: dict[tuple[str, str], threading.Lock] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the writer's calls ------------------------------------------------------------------------------
    def claim(self, user_id: str, project_id: str) -> tuple[Lease, bool]:
        """The project's lease, held from now on: (lease, newly acquired). LeaseHeld when another droplet has it.

        A lease already held is returned without a round trip when it has more than a third of its TTL left.
        """
        key = (user_id, project_id)
        with self._lock:
            lock = self._claim_locks.setdefault(key, threading.Lock())
        with lock:  # one acquisition per project at a time; other projects go on
            self._touched[key] = time.monotonic()
            held = self._held.get(key)
            if held is not None and self._fresh(held):
                return held, False
            started = time.monotonic()
            lease = self.store.acquire(user_id, project_id, self.holder, self.ttl_s)
            with self._lock:
                self._held[key] = lease
                self._epochs[key] = lease.epoch
                self._touched[key] = time.monotonic()
                self._deadline[key] = started + self.ttl_s
            if lease.takeover:
                self.takeovers += 1
                log.info("took over %s/%s from %s at epoch %d", user_id, project_id, lease.previous, lease.epoch)
            if held is not None and held.epoch != lease.epoch:
                # our lapsed lease went to another droplet and came back: what ran under the old epoch is stale
                self.lost += 1
                self.on_lost(held)
            return lease, held is None or held.epoch != lease.epoch

    def _fresh(self, lease: Lease) -> bool:
        left = self._deadline.get((lease.user_id, lease.project_id), 0.0) - time.monotonic()
        return left > self.ttl_s * 2 / 3

    def epoch_of(self, user_id: str, project_id: str) -> int:
        """The epoch this droplet last held the project at (0 = never): every write of it carries this."""
        return self._epochs.get((user_id, project_id), 0)

    def holds(self, user_id: str, project_id: str) -> Lease | None:
        """The held lease when its local deadline has not passed (a paused droplet sees it has)."""
        key = (user_id, project_id)
        lease = self._held.get(key)
        if lease is None or self._deadline.get(key, 0.0) <= time.monotonic():
            return None
        return lease

    def confirm(self, user_id: str, project_id: str) -> Lease | None:
        """Renew now, asking Postgres: the lease when still ours, None when lost (the caller must not go live)."""
        lease = self._held.get((user_id, project_id))
        if lease is None:
            return None
        return self._renew(lease)

    def touch(self, user_id: str, project_id: str) -> None:
        """Note activity on a held project (postpones its idle release)."""
        self._touched[(user_id, project_id)] = time.monotonic()

    def held(self) -> list[Lease]:
        """The leases held now."""
        with self._lock:
            return list(self._held.values())

    # -- the renewer ------------------------------------------------------------------------------------
    def _renew(self, lease: Lease) -> Lease | None:
        key = (lease.user_id, lease.project_id)
        started = time.monotonic()
        try:
            renewed = self.store.renew(lease, self.ttl_s)
        except Exception:
            log.warning("lease renewal of %s/%s failed; retrying", *key, exc_info=True)
            return lease if self.holds(*key) else None
        with self._lock:
            if renewed is None:
                if self._held.pop(key, None) is not None:
                    self.lost += 1
                    lost = True
                else:
                    lost = False
            else:
                self._held[key] = renewed
                self._deadline[key] = started + self.ttl_s
                lost = False
        if lost:
            log.warning("lost the lease of %s/%s (epoch %d): another droplet took it over", *key, lease.epoch)
            try:
                self.on_lost(lease)
            except Exception:
                log.exception("on_lost hook failed for %s/%s", *key)
        return renewed

    def tick(self) -> None:
        """One renewer pass: renew what is busy or recent, release what has been idle long enough."""
        now = time.monotonic()
        for lease in self.held():
            key = (lease.user_id, lease.project_id)
            idle_for = now - self._touched.get(key, 0.0)
            try:
                idle = idle_for >= self.release_idle_s and self.is_idle(*key)
            except Exception:
                log.exception("idle check of %s/%s failed", *key)
                idle = False
            if idle or (self.draining and self.is_idle(*key)):
                self.release(lease)
            elif self._deadline.get(key, 0.0) - now < self.ttl_s * 2 / 3:
                self._renew(lease)
        try:
            self.store.heartbeat(self.holder, draining=self.draining, held=len(self._held), takeovers=self.takeovers,
                                 refusals=self.refusals)
        except Exception:
            log.debug("fleet heartbeat failed", exc_info=True)

    def release(self, lease: Lease) -> None:
        """Give a lease back (it expires now); a failure only means it expires on its own."""
        key = (lease.user_id, lease.project_id)
        with self._lock:
            if self._held.get(key) is not lease and self._held.get(key) is not None:
                lease = self._held[key]
            self._held.pop(key, None)
            self._deadline.pop(key, None)
        try:
            self.store.release(lease)
            log.info("released %s/%s (epoch %d)", *key, lease.epoch)
        except Exception:
            log.warning("lease release of %s/%s failed; it expires on its own", *key, exc_info=True)

    def release_all(self) -> int:
        """Release every lease (drain and shutdown); how many were released."""
        leases = self.held()
        for lease in leases:
            self.release(lease)
        return len(leases)

    def stats(self) -> dict[str, Any]:
        """Counters for metrics and ``daemonctl fleet``."""
        return {"dropletId": self.holder, "leasesHeld": len(self._held), "takeovers": self.takeovers,
                "leasesLost": self.lost, "fencingRefusals": self.refusals, "draining": self.draining,
                "held": [f"{lease.user_id}/{lease.project_id}@{lease.epoch}" for lease in self.held()]}

    def start(self) -> None:
        """Start the renewer thread (a pass every sixth of the TTL)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="previewd-leases", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(max(0.2, self.ttl_s / 6)):
            try:
                self.tick()
            except Exception:  # the renewer never dies
                log.exception("lease renewer pass failed")

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; release held leases unless told not to (a crash test keeps them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if release:
            self.release_all()
