"""Limits for a process tree the caller starts itself (a browser that needs its own pipes): join, then kill all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.layers import make_layer
from sandbox.limits import Limits


@contextmanager
def confined(limits: Limits, layer: str) -> Iterator[list[str]]:
    """Yield the cgroup `cgroup.procs` files a child must join before it execs (empty on the watchdog layer);
    on exit everything in them is killed and the cgroups removed, whatever the caller did."""
    lay = make_layer(layer)
    try:
        yield list(lay.prepare(limits).cgroup_procs)
    finally:
        lay.kill()
        lay.cleanup()
