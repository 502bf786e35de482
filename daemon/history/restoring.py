"""Restore: a fresh bare repository rebuilt from a project's recovery packs, each checked before it is ingested."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dulwich.objects import Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from daemon.history import budget as budget_mod
from daemon.history import packing, trees
from daemon.history.budget import Budget
from daemon.history.errors import HistoryError
from daemon.history.locks import lock_for
from daemon.history.names import MAIN, VERSION_ID, init_refs


def restore_at(path: Path, packs: Sequence[tuple[str, bytes]], budget: Budget) -> None:
    """Build the repository in a temp dir beside the empty (or absent) `path`; rename it in when complete."""
    if path.is_symlink() or (path.exists() and (not path.is_dir() or any(path.iterdir()))):
        raise HistoryError("path_not_empty", f"restore target {path} exists and is not empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.restore-", dir=path.parent))
    try:
        restore_into(tmp, packs, budget)
        with lock_for(path).exclusive():
            if path.exists():
                path.rmdir()
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def restore_into(tmp: Path, packs: Sequence[tuple[str, bytes]], budget: Budget) -> None:
    """Ingest packs into a fresh bare repo at tmp, check each builds on what came before, set refs."""
    Repo.init_bare(str(tmp)).close()
    init_refs(tmp)
    refs: dict[str, tuple[str, str]] = {}  # ref -> (sha, pack name)
    last_top: str | None = None
    meter = budget.meter(f"restore of {tmp.name.split('.restore-')[0].lstrip('.')}")
    with Repo(str(tmp)) as repo:
        store = repo.object_store
        for name, data in packs:
            manifest, pack = packing.read_zip(name, data, budget.max_bytes)
            budget_mod.scan_pack(name, pack, meter)
            base = manifest.get("base_commit")
            if base and ObjectID(base.encode()) not in store:
                raise HistoryError(
                    "missing_pack",
                    f"pack {name} builds on version {manifest.get('base')} (commit {base}) which no earlier "
                    "pack holds: a pack before it is missing",
                    pack=name,
                )
            packing.ingest(store, name, pack)
            for ref, sha in manifest["refs"].items():
                refs[ref] = (sha, name)
            last_top = manifest.get("top_commit") or last_top
        # Every ref must reach a complete history; a gap means a pack went missing.
        for ref, (sha, name) in refs.items():
            if not ref.startswith("refs/tags/") or not VERSION_ID.match(ref[len("refs/tags/") :]):
                raise HistoryError("corrupt_pack", f"pack {name} names an invalid ref {ref!r}", pack=name)
            try:
                packing.reachable(store, [ObjectID(sha.encode())])
            except HistoryError as exc:
                raise HistoryError(
                    "missing_pack",
                    f"version {ref[10:]} from pack {name} is incomplete: {exc.message}; a pack is missing",
                    pack=name,
                ) from exc
            obj = store[ObjectID(sha.encode())]
            if not isinstance(obj, Commit):
                raise HistoryError("corrupt_pack", f"pack {name}: {ref} is not a commit", pack=name)
            for _p, _m, _s in trees.iter_files(store, obj.tree):
                pass  # validates every path before anyone checks it out
            repo.refs[Ref(ref.encode())] = ObjectID(sha.encode())
        if last_top is not None:
            repo.refs[Ref(MAIN)] = ObjectID(last_top.encode())
