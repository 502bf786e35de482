"""The one exception `run` raises for a host-side failure (never for anything the child does)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (cgroup creation, launcher failure); `code` names the stage."""

    code = "sandbox_setup"

    def __init__(self, message: str, *, stage: str = "setup") -> None:
        super().__init__(message)
        self.stage = stage
