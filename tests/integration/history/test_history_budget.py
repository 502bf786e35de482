"""History work on one project has a budget: huge or many blobs are refused by size, before the daemon reads them.

The crafted repositories hold what a workspace snapshot recorded before the fix: blobs of hundreds of MiB that are
a few KiB on disk. Each test fails on the code before the budget (which read such blobs whole, into memory).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.history import HistoryError, ProjectRepo
from daemon.history import packing as packing_mod
from tests.integration.history.history_support import SMALL_PROJECT, Repos, git
from tests.support.crafted_history import plant_version

MiB = 2**20
# Just over the budgets in daemon/history/budget.py (literal, so the file imports on the code before them too):
SOURCE_OBJECT = 40 * MiB  # sources: 33 MiB an object (the lockfile's cap and a little)
SOURCE_FILES = 20_001  # sources: 20,000 files
REPOSITORY_OBJECT = 129 * MiB  # prune, packs, restore: 128 MiB an object


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def polluted(repos: Repos) -> ProjectRepo:
    """v1: a clean project; v2: the same plus a blob over the sources' one-object cap (an install script's)."""
    repo = repos.new()
    plant_version(repo.path, "v1", dict(SMALL_PROJECT), {})
    plant_version(repo.path, "v2", dict(SMALL_PROJECT), {"big.bin": SOURCE_OBJECT}, parent="v1")
    return repo


def test_reading_an_oversized_version_is_refused_by_size(polluted: ProjectRepo) -> None:
    before = _peak_mib()
    with pytest.raises(HistoryError) as err:
        polluted.files("v2")
    assert err.value.code == "history_limit" and "big.bin" in err.value.message, err.value
    assert _peak_mib() - before < 16  # refused from the object's header, never inflated
    assert set(polluted.files("v1")) == set(SMALL_PROJECT)  # a version within budget reads as ever


def test_a_diff_over_budget_is_refused(polluted: ProjectRepo) -> None:
    with pytest.raises(HistoryError) as err:
        polluted.diff("v1", "v2", "stat")
    assert err.value.code == "history_limit", err.value
    assert polluted.diff("v1", "v1", "files") == []


def test_too_many_files_are_refused(repos: Repos) -> None:
    repo = repos.new()
    many = {f"f/{i}.txt": "x" for i in range(SOURCE_FILES)}
    plant_version(repo.path, "v1", many, {})
    with pytest.raises(HistoryError) as err:
        repo.files("v1")
    assert err.value.code == "history_limit" and "objects" in err.value.message


def test_prune_of_a_repository_over_budget_is_refused_and_changes_nothing(repos: Repos) -> None:
    repo = repos.new()
    plant_version(repo.path, "v1", dict(SMALL_PROJECT), {"dist/huge.bin": REPOSITORY_OBJECT},
                  dist=True)
    plant_version(repo.path, "v1", dict(SMALL_PROJECT), {})
    before = git(repo.path, "count-objects", "-v")
    peak = _peak_mib()
    with pytest.raises(HistoryError) as err:
        repo.prune()
    assert err.value.code == "history_limit" and "huge.bin" in err.value.message, err.value
    assert _peak_mib() - peak < 16
    assert git(repo.path, "count-objects", "-v") == before


def test_restore_refuses_a_pack_whose_blob_inflates_past_the_budget(repos: Repos, tmp_path: Path) -> None:
    src = repos.new("src.git")
    plant_version(src.path, "v1", dict(SMALL_PROJECT), {"big.bin": REPOSITORY_OBJECT})
    # The pack as the code before the budget exported it: a few hundred KiB of zlib for 129 MiB of zeros.
    from dulwich.repo import Repo

    with Repo(str(src.path)) as r:
        top = r.refs[b"refs/tags/v1"]
        data = packing_mod.export_zip(r.object_store, None, top, {"v1": top},
                                      {"base": None, "top": "v1", "base_commit": None, "top_commit": top.decode()})
    assert len(data) < 2 * MiB
    dest = tmp_path / "restored.git"
    with pytest.raises(HistoryError) as err:
        ProjectRepo.restore(dest, [("p1.pack.zip", data)])  # refused from the entry header, never inflated
    assert err.value.code == "history_limit", err.value
    assert not dest.exists() and not list(tmp_path.glob(".restored.git.restore-*"))


_CHILD = """
import resource, sys
from pathlib import Path
from daemon.history import ProjectRepo, HistoryError
repo = ProjectRepo(Path(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    repo.snapshot_dist(Path(sys.argv[2]), "v1", "dist")
    outcome = "ok"
except HistoryError as exc:
    outcome = exc.code
print(outcome, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def _snapshot_dist_in_child(repo: ProjectRepo, workspace: Path) -> tuple[str, float]:
    """snapshot_dist in a fresh interpreter: (outcome, growth of its resident high-water mark in MiB)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(repo.path), str(workspace)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[3]).stdout.split()
    return out[0], float(out[1])


def _with_output(repos: Repos, workspace: Path, size: int) -> ProjectRepo:
    repo = repos.new()
    repo.snapshot(workspace, "v1", None, "v1")
    (workspace / "dist").mkdir()
    (workspace / "dist" / "index.html").write_text("<h1>hi</h1>")
    with open(workspace / "dist" / "big.bin", "wb") as f:
        f.write(b"not only zeros")
        f.truncate(size)  # sparse: the disk pays nothing, a whole read pays all of it
    return repo


def test_a_big_output_file_is_streamed_into_history_never_read_whole(repos: Repos, workspace: Path) -> None:
    repo = _with_output(repos, workspace, 96 * MiB)
    outcome, grew = _snapshot_dist_in_child(repo, workspace)
    assert outcome == "ok"
    assert git(repo.path, "cat-file", "-s", "refs/dist/v1:dist/big.bin").strip() == str(96 * MiB)
    assert grew < 24, f"snapshot_dist grew the process by {grew:.0f} MiB for a 96 MiB file"


def test_output_over_its_budget_is_refused_before_it_is_read(repos: Repos, workspace: Path) -> None:
    repo = _with_output(repos, workspace, REPOSITORY_OBJECT)
    outcome, grew = _snapshot_dist_in_child(repo, workspace)
    assert outcome == "history_limit" and grew < 24, (outcome, grew)
    assert "v1" not in repo.dist_versions()


def test_a_checkout_over_budget_is_refused_before_anything_is_written(repos: Repos, tmp_path: Path) -> None:
    repo = repos.new()
    plant_version(repo.path, "v1", dict(SMALL_PROJECT), {"big.bin": REPOSITORY_OBJECT})
    with pytest.raises(HistoryError) as err:
        repo.checkout("v1", tmp_path / "out")
    assert err.value.code == "history_limit", err.value
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.checkout-*"))
