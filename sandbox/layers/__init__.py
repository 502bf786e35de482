"""Enforcement layers, best first: cgroup v2 (delegated), cgroup v1 (hybrid hosts), /proc watchdog."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.layers import cgroup_v1, cgroup_v2, watchdog
from sandbox.layers.base import Availability, LaunchPlan, Layer, Usage

LAYER_NAMES = ("cgroup_v2", "cgroup_v1", "watchdog")

_FACTORIES: dict[str, Callable[[], Layer]] = {
    "cgroup_v2": cgroup_v2.CgroupV2Layer,
    "cgroup_v1": cgroup_v1.CgroupV1Layer,
    "watchdog": watchdog.WatchdogLayer,
}

_CHECKS: dict[str, Callable[[], Availability]] = {
    "cgroup_v2": cgroup_v2.availability,
    "cgroup_v1": cgroup_v1.availability,
    "watchdog": watchdog.availability,
}


def make_layer(name: str) -> Layer:
    """A fresh per-run instance of the named layer."""
    return _FACTORIES[name]()


def check_layer(name: str) -> Availability:
    """Probe the host for one layer (uncached; may create and remove a test cgroup)."""
    return _CHECKS[name]()


__all__ = ["LAYER_NAMES", "Availability", "LaunchPlan", "Layer", "Usage", "check_layer", "make_layer"]
