"""How a build step ends a version as failed: an exception carrying the reason code."""

from __future__ import annotations


class BuildFailed(Exception):
    """Ends a build as failed with a reason code from DESIGN.md."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
