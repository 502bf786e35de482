"""Generator backends behind one Protocol: template (offline default), command and claude; picked by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from daemon.core.contract import ContractLimits
from daemon.generators.base import (
    FileSink,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    Generator,
    StreamingGenerator,
)
from daemon.generators.claude import ClaudeGenerator
from daemon.generators.command import CommandGenerator
from daemon.generators.template import TemplateGenerator

BACKENDS = ("template", "command", "claude")

__all__ = [
    "BACKENDS",
    "ClaudeGenerator",
    "CommandGenerator",
    "FileSink",
    "GenerationError",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "StreamingGenerator",
    "TemplateGenerator",
    "make_generator",
]


def make_generator(
    backend: str,
    *,
    command: Sequence[str] = (),
    claude_executable: str = "claude",
    model: str | None = None,
    timeout_s: float = 600,
    limits: ContractLimits | None = None,
    env: Mapping[str, str] | None = None,
) -> Generator:
    """The generator named ``backend``; ValueError naming the problem for an unknown name or a bad setting.

    ``env`` is the tool's whole environment (None: the daemon's own minus its ``PREVIEWD_*`` variables).
    """
    limits = limits or ContractLimits()
    if timeout_s <= 0:
        raise ValueError(f"generator timeout must be positive, got {timeout_s}")
    if backend == "template":
        return TemplateGenerator(limits=limits)
    if backend == "command":
        return CommandGenerator(command, timeout_s=timeout_s, limits=limits, env=env)
    if backend == "claude":
        if not claude_executable:
            raise ValueError("generator claude executable must not be empty")
        return ClaudeGenerator(executable=claude_executable, model=model, timeout_s=timeout_s, limits=limits, env=env)
    raise ValueError(f"unknown generator backend {backend!r}; expected one of {', '.join(BACKENDS)}")
