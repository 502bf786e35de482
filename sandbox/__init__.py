"""Run one command under hard limits on its whole process tree; knows nothing of builds."""

from sandbox.confine import confined
from sandbox.env import safe_env
from sandbox.errors import SandboxError
from sandbox.fsview import FsView
from sandbox.layers.cgroup_v1 import CgroupV1Layer
from sandbox.layers.cgroup_v2 import CgroupV2Layer
from sandbox.layers.watchdog import WatchdogLayer
from sandbox.limits import Limits
from sandbox.probe import probe, select_layer
from sandbox.result import BREACHES, REASONS, Result
from sandbox.runner import run

__all__ = [
    "BREACHES",
    "REASONS",
    "CgroupV1Layer",
    "CgroupV2Layer",
    "FsView",
    "Limits",
    "Result",
    "SandboxError",
    "WatchdogLayer",
    "confined",
    "probe",
    "run",
    "safe_env",
    "select_layer",
]
