"""The source snapshot records what the contract wrote, never what install scripts left in the workspace; a base
from older, polluted history is filtered on the way back and refused by size before it is read."""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path
from typing import Any

import pytest

from daemon.core.db import ProjectVersion
from daemon.core.errors import Unavailable
from daemon.intake import restore
from daemon.intake.submit import BuildRequest, submit_new, submit_rebuild
from tests.fakes.tiny_generator import contract_json
from tests.support.crafted_history import plant_version
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.test_pipeline import InlineQueue

MiB = 2**20
# A project's own postinstall (allowed: the project's lifecycle scripts run): big sparse files, planted config.
HOSTILE_POSTINSTALL = ("mkdir -p src/deep && truncate -s 96M big1.bin && truncate -s 96M src/big2.bin "
                       "&& echo registry=http://evil.invalid > .npmrc && echo x > src/deep/.npmrc "
                       "&& echo planted > planted.txt")


def _contract(title: str, postinstall: str | None = None) -> dict[str, Any]:
    extra = {"scripts": {"postinstall": postinstall}} if postinstall else None
    return json.loads(contract_json("mkdir -p dist && cp index.html dist/", {"index.html": f"<h1>{title}</h1>"},
                                    extra=extra))


def _build(b: Bench, contract: dict[str, Any], *, new: bool) -> ProjectVersion:
    b.gen.queue.append(contract)
    q = InlineQueue()
    submit = submit_new if new else submit_rebuild
    v = submit(b.rt, q, BuildRequest("u1", "p1", "x"))  # type: ignore[arg-type]
    b.pipeline.run(q.ids[0])
    return ProjectVersion.get_by_id(v.version_id)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_files_an_install_script_writes_never_enter_the_snapshot(bench: Bench) -> None:
    peak = _peak_mib()
    v = _build(bench, _contract("Bakery", HOSTILE_POSTINSTALL), new=True)
    assert v.status == "deployed", v.failure_message
    work = bench.rt.layout.project_dir("u1", "p1") / "work"
    assert (work / "big1.bin").stat().st_size == 96 * MiB  # the script did run
    repo = bench.rt.repo("u1", "p1")
    assert set(repo.files(v.version_id)) == {"package.json", "index.html", "pnpm-lock.yaml", "pnpm-workspace.yaml"}
    # the daemon never read the 192 MiB the script left (sparse: a few KiB on disk)
    assert _peak_mib() - peak < 96
    # the recovery pack holds no more than the contract either
    pack = bench.rt.layout.local_object(bench.rt.layout.pack_key("u1", "p1", None, v.version_id))
    assert pack.stat().st_size < 64 * 1024


def test_a_polluted_base_is_filtered_and_its_config_never_written_back(bench: Bench, tmp_path: Path) -> None:
    v1 = _build(bench, _contract("v1"), new=True)
    repo = bench.rt.repo("u1", "p1")
    files = {p: b.decode() for p, b in repo.files(v1.version_id).items()}
    # v1 as a workspace walk recorded it before the fix: a postinstall's `.npmrc` at two depths
    subprocess.run(["git", "--git-dir", str(repo.path), "tag", "-d", v1.version_id], check=True, capture_output=True)
    plant_version(repo.path, v1.version_id, {**files, ".npmrc": "registry=http://evil.invalid\n",
                                             "src/.npmrc": "x\n"}, {})
    delta = {"delta": True, "files": [{"path": "index.html", "content": "<h1>v2</h1>"}]}
    v2 = _build(bench, delta, new=False)
    assert v2.status == "deployed", v2.failure_message
    base = bench.gen.requests[-1].base_files
    assert base is not None and ".npmrc" not in base and "src/.npmrc" not in base and "index.html" in base
    work = bench.rt.layout.project_dir("u1", "p1") / "work"
    assert not (work / ".npmrc").exists() and not (work / "src" / ".npmrc").exists()
    assert set(repo.files(v2.version_id)) == {"package.json", "index.html", "pnpm-lock.yaml", "pnpm-workspace.yaml"}
    assert "left out 2 file(s) no contract wrote" in bench.rt.layout.log_path(v2.version_id).read_text()


def test_a_base_polluted_with_huge_files_rebuilds_from_what_the_contracts_wrote_unread(bench: Bench) -> None:
    v1 = _build(bench, _contract("v1"), new=True)
    repo = bench.rt.repo("u1", "p1")
    files = {p: b.decode() for p, b in repo.files(v1.version_id).items()}
    # v1 as a workspace walk recorded it before the fix: a postinstall's two 500 MiB sparse files
    subprocess.run(["git", "--git-dir", str(repo.path), "tag", "-d", v1.version_id], check=True, capture_output=True)
    plant_version(repo.path, v1.version_id, files, {"big1.bin": 500 * MiB, "src/big2.bin": 500 * MiB})
    peak = _peak_mib()
    v2 = _build(bench, {"delta": True, "files": [{"path": "index.html", "content": "<h1>v2</h1>"}]}, new=False)
    assert v2.status == "deployed", v2.failure_message
    base = bench.gen.requests[-1].base_files
    assert base is not None and set(base) == set(files)  # the generator request holds the contract's files only
    assert set(repo.files(v2.version_id)) == set(files)
    assert _peak_mib() - peak < 64  # 1 GiB was never read
    assert "left out 2 file(s) no contract wrote" in bench.rt.layout.log_path(v2.version_id).read_text()


def test_a_base_over_the_sources_budget_fails_the_rebuild_before_the_generator_is_asked(bench: Bench) -> None:
    v1 = _build(bench, _contract("v1"), new=True)
    repo = bench.rt.repo("u1", "p1")
    files = {p: b.decode() for p, b in repo.files(v1.version_id).items()}
    subprocess.run(["git", "--git-dir", str(repo.path), "tag", "-d", v1.version_id], check=True, capture_output=True)
    # 70 files of 990 kB: each within a contract's file cap, 69 MB together, over the 64 MiB of sources
    many = {f"assets/{i}.txt": f"{i:08d}" + "x" * 989_992 for i in range(70)}
    plant_version(repo.path, v1.version_id, {**files, **many}, {})
    asked = len(bench.gen.requests)
    v2 = _build(bench, {"delta": True, "files": [{"path": "index.html", "content": "<h1>v2</h1>"}]}, new=False)
    assert (v2.status, v2.failure_reason) == ("failed", "history_limit"), v2.failure_message
    assert "over 67108864 bytes in all" in (v2.failure_message or "")
    assert len(bench.gen.requests) == asked  # no generator request was built from it


def _store_pack(b: Bench, key: str, data: bytes) -> None:
    path = b.rt.layout.local_object(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_restore_refuses_a_recovery_pack_that_inflates_past_the_budget(bench: Bench, tmp_path: Path) -> None:
    from dulwich.repo import Repo

    from daemon.history import ProjectRepo
    from daemon.history.packing import export_zip

    # the recovery pack a polluted snapshot made: 129 MiB of zeros in a few hundred KiB
    src = ProjectRepo.open_or_init(tmp_path / "src.git")
    plant_version(src.path, "01AAAAAAAAAAAAAAAAAAAAAAAA", {"index.html": "x"}, {"big.bin": 129 * MiB})
    with Repo(str(src.path)) as r:
        top = r.refs[b"refs/tags/01AAAAAAAAAAAAAAAAAAAAAAAA"]
        data = export_zip(r.object_store, None, top, {"01AAAAAAAAAAAAAAAAAAAAAAAA": top},
                          {"base": None, "top": "01AAAAAAAAAAAAAAAAAAAAAAAA", "base_commit": None,
                           "top_commit": top.decode()})
    _store_pack(bench, bench.rt.layout.pack_key("u9", "p9", None, "01AAAAAAAAAAAAAAAAAAAAAAAA"), data)
    peak = _peak_mib()
    with pytest.raises(Unavailable) as err:
        restore.restore(bench.rt, "u9", "p9")
    assert err.value.code == "history_limit", err.value.body()
    assert _peak_mib() - peak < 64
    assert not bench.rt.layout.repo_path("u9", "p9").exists()


def test_restore_refuses_a_pack_file_over_its_cap_before_reading_it(bench: Bench) -> None:
    path = bench.rt.layout.local_object(bench.rt.layout.pack_key("u9", "p9", None, "01AAAAAAAAAAAAAAAAAAAAAAAA"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(65 * MiB)  # sparse: nothing on disk, 65 MiB to read
    with pytest.raises(Unavailable) as err:
        restore.restore(bench.rt, "u9", "p9")
    assert err.value.code == "history_limit", err.value.body()
