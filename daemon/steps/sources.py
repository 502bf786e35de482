"""A build's sources in history: the base it starts from, and the snapshot of what the contract wrote.

The source snapshot is the version's file set (contract applied to its base, sanitized by the daemon, plus the
lockfile the daemon read with a cap), never a walk of the workspace: install scripts ran there, and what they
wrote (a 500 MiB sparse file, a planted `.npmrc`) is neither read by the daemon nor recorded. Both directions go
through `trees.refused_source`, so reserved names from an older, polluted snapshot are dropped, never written back.
The Snapshot step commits it once the install settled the lockfile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from daemon.core.db import ProjectVersion
from daemon.history import HistoryError, ProjectRepo
from daemon.history.trees import refused_source
from daemon.project import frameworks, monorepo
from daemon.project.failures import BuildFailed
from daemon.steps.context import BuildContext

LIMIT_REASON = "history_limit"
MAX_LOCKFILE = 32 * 2**20  # as the pipeline reads pnpm-lock.yaml after an install


def read_base(repo: ProjectRepo, base_version_id: str, say: Callable[[str], None],
              max_file_bytes: int) -> dict[str, str]:
    """The base version's sources as text, within the sources budget (which caps the generator request too).

    A file no contract could have written is left out unread: a reserved name, or bigger than a contract's file
    cap `max_file_bytes` (the lockfile, which the daemon reads with its own cap, excepted). So a history an older
    workspace snapshot polluted (a postinstall's 500 MiB sparse files, its `.npmrc`) still rebuilds, from what
    the contracts wrote. Raises BuildFailed: history_limit when the rest is over budget, generation_failed when
    the base is unreadable.
    """
    dropped: list[str] = []

    def admit(path: str, size: int) -> bool:
        cap = MAX_LOCKFILE if path == "pnpm-lock.yaml" else max_file_bytes
        if refused_source(path) is not None or size > cap:
            dropped.append(path)
            return False
        return True

    try:
        raw = repo.files(base_version_id, admit=admit)
    except HistoryError as exc:
        if exc.code == LIMIT_REASON:
            raise BuildFailed(LIMIT_REASON, f"base version {base_version_id} is too big to read: {exc.message}") \
                from exc
        raise BuildFailed("generation_failed", f"base version {base_version_id} unreadable: {exc}") from exc
    if dropped:
        say(f"base {base_version_id}: left out {len(dropped)} file(s) no contract wrote (reserved names, or over "
            f"the {max_file_bytes} byte file cap), unread: " + ", ".join(sorted(dropped)[:10]))
    return {p: b.decode("utf-8", "replace") for p, b in raw.items()}


def snapshot(repo: ProjectRepo, files: dict[str, str], v: ProjectVersion, exclude_dirs: Sequence[str],
             say: Callable[[str], None]) -> str:
    """Commit the version's file set (its parent its base); return the commit sha.

    Raises BuildFailed: history_limit over the sources budget, build_failed when the snapshot fails otherwise.
    """
    try:
        sha, refused = repo.snapshot_files(dict(files), v.version_id, v.parent_version_id, v.prompt[:500],
                                           exclude_dirs=exclude_dirs)
    except HistoryError as exc:
        if exc.code == LIMIT_REASON:
            raise BuildFailed(LIMIT_REASON, f"snapshot refused: {exc.message}") from exc
        raise BuildFailed("build_failed", f"snapshot failed: {exc}") from exc
    if refused:
        say(f"snapshot: left out {len(refused)} file(s) no version may hold (reserved or daemon-owned names): "
            + ", ".join(refused[:10]))
    say(f"snapshot {sha[:12]}")
    return sha


class Snapshot:
    """The version's commit (sources + lockfile, parent = its base); also where the build's output may appear."""

    name = "snapshot"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        v, workspace, mono = ctx.v, ctx.box.dirs.work, ctx.layout
        _, out_candidates = frameworks.detect(workspace)
        excluded = {c.split("/")[0] for c in out_candidates} - frameworks.SOURCE_DIRS
        if mono.target is not None:
            out_candidates = monorepo.target_outputs(workspace, mono.target)
            excluded = {k for k in ctx.kept if not k.endswith("/node_modules")}
        ctx.out_candidates = out_candidates
        # (the file set the contract wrote, never a walk of what install scripts left in the workspace)
        snapshot(ctx.rt.repo(v.user_id, v.project_id), ctx.files, v, tuple(sorted(excluded)), ctx.log.step)
