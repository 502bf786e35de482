"""What the steps of one build share (BuildContext), the one writer of the version row during a build
(VersionWriter), and the Step protocol the pipeline runs."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from daemon.core import versions
from daemon.core.db import ProjectVersion

if TYPE_CHECKING:
    import sandbox
    from daemon.core.versions import OutboxWriter
    from daemon.project import isolation, monorepo, toolchain
    from daemon.project.buildlog import BuildLog
    from daemon.runtime import Runtime
    from daemon.steps import audit, checks

T = TypeVar("T")
# The version's `timings` a build writes (in this order); `bundle_warm` or `bundle_cold` says which path the bundle
# took (`bundle` keeps the total for older readers).
TIMING_KEYS = ("queue", "generate", "write", "install", "bundle", "export", "deploy")


@dataclass
class StepTimes:
    """Milliseconds per timing key of the steps that ended; whether the install was reused."""

    ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0))
    install_skipped: bool = False

    def add(self, key: str, ms: int) -> None:
        """Count `ms` under `key` (a timing key of TIMING_KEYS)."""
        self.ms[key] = self.ms.get(key, 0) + ms

    @property
    def install_ms(self) -> int:
        return self.ms.get("install", 0)

    def breakdown(self) -> dict[str, int]:
        """The version's `timings` (ms per step; checks and render are added when they end)."""
        return dict(self.ms)


class VersionWriter:
    """The one place a build writes its version's row (go-live itself is daemon/publish/golive.py's)."""

    def __init__(self, outbox: OutboxWriter | None, version_id: str) -> None:
        self.outbox, self.version_id = outbox, version_id

    def record(self, **fields: Any) -> ProjectVersion:
        """Write `fields` on the row (versions.update: row_version bumped, replicated through the outbox)."""
        return versions.update(self.outbox, self.version_id, **fields)


@dataclass
class Sandboxing:
    """What every step running generated code shares: toolchain, directories, whether views apply, who runs it."""

    tc: toolchain.Toolchain
    dirs: isolation.ProjectDirs
    confined: bool
    readonly: tuple[Path, ...]
    tmp_bytes: int
    user: str | None  # who generated code runs as (None: the daemon's uid)
    ids: tuple[int, int] | None  # its (uid, gid) when that differs from the daemon's
    env: dict[str, str]
    packages: tuple[str, ...] = ()  # a workspace's package dirs below the root (monorepo.Layout.dirs)

    @property
    def manifests(self) -> tuple[str, ...]:
        """Every package.json whose change means a new install."""
        return ("package.json", *(f"{d}/package.json" for d in self.packages))


@dataclass
class Output:
    """The build output once staged: where the copy lies, its size, the framework it was found for."""

    rel: str
    dir: Path
    bytes: int
    framework: str | None


class StreamedWork(Protocol):
    """A first build's streamed generation (daemon/steps/streaming.py), as the Write and install steps see it."""

    accepted: bool  # the install it started holds for the final file set
    install_ms: int
    nm_bytes: int  # node_modules' size that install left

    def finish(self) -> None:
        """Generation is over: wait for its install, write what was held back."""
        ...

    def adopt(self, ctx: BuildContext) -> None:
        """Keep its install when the final file set's dependency inputs are those it ran on."""
        ...

    def abort(self) -> None:
        """Stop its install and wait for it."""
        ...


def _need(value: T | None, what: str) -> T:
    if value is None:
        raise RuntimeError(f"a step ran before {what} was set")  # a wrong step order, never a build's doing
    return value


@dataclass
class BuildContext:
    """One build's shared state: filled in step by step, in the order of the pipeline's list."""

    rt: Runtime
    v: ProjectVersion
    log: BuildLog
    writer: VersionWriter
    check_lease: Callable[[], None]  # raises BuildFailed('interrupted') when a fleet droplet lost the project
    cancel: threading.Event  # set at shutdown past the grace period: the running step is killed
    pending_checks: checks.Pending
    warm: WarmPool | None = None  # the daemon's warm bundlers (daemon/steps/warm.py; None: a pipeline without)
    # Whether the bundle step used the project's warm bundler (None: the build command is not one it can stand
    # in for, so none is kept for the project either).
    bundled_warm: bool | None = None
    started: float = field(default_factory=time.monotonic)
    times: StepTimes = field(default_factory=StepTimes)
    dirs: isolation.ProjectDirs | None = None  # the project's checked directories (prepare)
    base_files: dict[str, str] | None = None  # the parent's sources (prepare)
    files: dict[str, str] = field(default_factory=dict)  # the version's file set (generate/restore, then write)
    target_hint: str | None = None  # the generator's targetPackage metadata
    sandboxing: Sandboxing | None = None  # (write)
    mono: monorepo.Layout | None = None  # (write)
    kept: list[str] = field(default_factory=list)  # workspace build output kept across builds (write)
    reusable: dict[str, Any] | None = None  # the install marker when dependencies are unchanged (write)
    streamed: StreamedWork | None = None  # files written, install started while generating (generate)
    nm_bytes: int = 0  # node_modules' size, counted in the code steps' disk cap (install)
    audit_job: audit.AuditJob | None = None
    out_candidates: tuple[str, ...] = ()  # where the output may appear (snapshot)
    bundle: sandbox.Result | None = None  # the build script's result (bundle; judged by the verdict step)
    output: Output | None = None  # (export)
    artifact: tuple[str, Path, int] | None = None  # object key, zip path, zip size (artifact)
    fields: dict[str, Any] = field(default_factory=dict)  # the row's fields the deploy leaves for finish
    dist: tuple[Path, str] | None = None  # (staging root, output dir) for the dist commit after going live
    workspace_scratch: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    undo: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # taken back if the build fails

    def record(self, **fields: Any) -> ProjectVersion:
        """Write fields on the version's row (through its one writer); the context keeps the row it returns."""
        self.v = self.writer.record(**fields)
        return self.v

    def leave_workspace(self) -> None:
        """The steps in the workspace are over: remove their scratch (HOME, the audit's copy; the audit thread
        ends first). Runs once; the runner calls it on every exit too."""
        self.workspace_scratch.close()

    @property
    def box(self) -> Sandboxing:
        return _need(self.sandboxing, "the sandboxing (write step)")

    @property
    def layout(self) -> monorepo.Layout:
        return _need(self.mono, "the workspace layout (write step)")

    @property
    def out(self) -> Output:
        return _need(self.output, "the staged output (export step)")

    @property
    def zip(self) -> tuple[str, Path, int]:
        return _need(self.artifact, "the artifact zip (artifact step)")


class WarmPool(Protocol):
    """What a build asks of the daemon's warm bundlers (daemon/steps/warm.Pool)."""

    size: int

    def hold(self, key: tuple[str, str], say: Callable[[str], None]) -> None:
        """The project's bundler stops running before the workspace is written."""
        ...

    def why_cold(self, ctx: BuildContext) -> str | None:
        """Why this build bundles cold (None: warm)."""
        ...

    def rebuild(self, ctx: BuildContext) -> sandbox.Result | str:
        """The warm build's result, or why it could not give one."""
        ...

    def keep(self, ctx: BuildContext) -> None:
        """Start a bundler for the project's next build."""
        ...


class Step(Protocol):
    """One step of a build. `timing`: the key of the version's timings its duration counts under (None: not
    timed). `run` raises BuildFailed(reason, message) to end the build; the runner records that once."""

    @property
    def name(self) -> str:
        """What the step is called (in tests and in reading the list)."""
        ...

    @property
    def timing(self) -> str | None:
        """The timing key its duration counts under, or None."""
        ...

    def applies(self, ctx: BuildContext) -> bool:
        """Whether the step runs for this build (decided when its turn comes)."""
        ...

    def run(self, ctx: BuildContext) -> None:
        """Do the step's work on `ctx`."""
        ...
