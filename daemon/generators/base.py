"""The Generator seam: what every generator backend (template, command, claude) promises the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from daemon.core.contract import Contract


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to turn into project files; ``base_files`` holds the current sources on a rebuild.

    ``repair`` (a repair attempt, daemon/intake/repair.py): the failed version's diagnostics, compact and capped
    (``reason``, ``message``, ``errors`` with their source lines, ``logTail``, ``instruction``); ``base_files``
    are then the failed version's files and the answer should be a small delta fixing them.
    """

    prompt: str
    framework: str | None = None
    base_files: Mapping[str, str] | None = None  # None = new project
    repair: Mapping[str, Any] | None = None

    @property
    def is_rebuild(self) -> bool:
        """True when the generator refines existing files (a delta is then acceptable)."""
        return self.base_files is not None

    def to_json(self) -> dict[str, Any]:
        """The request as the ``command`` backend receives it on stdin."""
        files = None
        if self.base_files is not None:
            files = [{"path": p, "content": c} for p, c in sorted(self.base_files.items())]
        out: dict[str, Any] = {"prompt": self.prompt, "framework": self.framework, "files": files}
        if self.repair is not None:
            out["repair"] = dict(self.repair)
        return out


@dataclass(frozen=True)
class GenerationResult:
    """A validated contract, plus the raw CLI JSON when the backend has one (stored in ``claude_json``)."""

    contract: Contract
    raw: dict[str, Any] | None = None
    tokens: int = 0  # input + output tokens when the backend reports them (metered: the repair budget)


class GenerationError(Exception):
    """The generator itself failed (crashed, timed out, reported an error); the version fails with this code."""

    code = "generation_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Generator(Protocol):
    """Turns a prompt (and, on a rebuild, the current files) into a validated contract.

    ``generate`` returns a full contract for a new project, and a full contract or a delta on a rebuild. It
    writes nothing to the project. Errors: GenerationError when the tool failed or timed out, ContractError
    (``invalid_output``) when its output breaks the contract. ``log`` receives human-readable progress lines
    (tool stderr included); no secret is ever passed to it.
    """

    name: str

    def generate(self, req: GenerationRequest, log: Callable[[str], None]) -> GenerationResult: ...


# (path, content) of one file entry of an answer still being generated.
FileSink = Callable[[str, str], None]


@runtime_checkable
class StreamingGenerator(Generator, Protocol):
    """An optional capability of a Generator: files handed over while the answer is still being generated.

    ``generate_streaming`` returns what ``generate`` would, with the same checks and errors, and calls
    ``on_file(path, content)`` (in the calling thread) for each file entry of the answer as soon as it is complete,
    in the answer's order (``templateFiles`` first: a later call for the same path replaces an earlier one). The
    calls are hints, not validated: the returned contract alone is what gets built. An exception raised by
    ``on_file`` stops the tool and propagates unchanged.
    """

    def generate_streaming(self, req: GenerationRequest, log: Callable[[str], None],
                           on_file: FileSink) -> GenerationResult: ...
