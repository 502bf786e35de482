"""Export of version packs and restore onto an empty path, including corrupted and missing packs."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from daemon.history import HistoryError, ProjectRepo
from tests.integration.history.history_support import Repos, git, write_files


def _history(repos: Repos, workspace: Path) -> tuple[ProjectRepo, list[tuple[str, bytes]]]:
    """V1 -> V2 -> V3 and V2 -> V4 (a branch), with the per-version packs the daemon would upload."""
    repo = repos.new()
    steps = [("V1", None, "a"), ("V2", "V1", "b"), ("V3", "V2", "c"), ("V4", "V2", "d")]
    packs = []
    for vid, parent, text in steps:
        write_files(workspace, {"src/main.ts": f"console.log('{text}')\n", f"src/{vid}.ts": f"// {vid}\n"})
        repo.snapshot(workspace, vid, parent, f"version {vid}")
        packs.append((f"git_{parent}_to_{vid}.pack.zip", repo.export_pack(parent, vid)))
    return repo, packs


def test_export_then_restore_round_trip(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    repo, packs = _history(repos, workspace)
    target = repos.track(tmp_path / "fresh" / "repo.git")
    restored = ProjectRepo.restore(target, packs)

    assert restored.versions() == repo.versions()
    for vid in repo.versions():
        assert restored.files(vid) == repo.files(vid)
    assert restored.diff("V3", "V4", "patch") == repo.diff("V3", "V4", "patch")
    assert restored.diff("V1", "V4", "stat") == repo.diff("V1", "V4", "stat")
    assert git(target, "rev-parse", "V4^").strip() == repo.commit_sha("V2")
    assert git(target, "show", "V3:src/main.ts") == "console.log('c')\n"
    # the restored repo keeps working as a history
    write_files(workspace, {"src/main.ts": "after restore\n"})
    restored.snapshot(workspace, "V5", "V4", "after restore")
    assert restored.diff("V4", "V5", "files") == [{"path": "src/main.ts", "change": "modified"}]
    assert sorted(p.name for p in target.parent.iterdir()) == ["repo.git"]


def test_a_pack_holds_only_new_objects_and_a_manifest(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    repo, packs = _history(repos, workspace)
    with zipfile.ZipFile(io.BytesIO(packs[1][1])) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "objects.idx", "objects.pack"]
        manifest = json.loads(zf.read("manifest.json"))
        (tmp_path / "p.pack").write_bytes(zf.read("objects.pack"))
        (tmp_path / "p.idx").write_bytes(zf.read("objects.idx"))
    assert manifest["refs"] == {"refs/tags/V2": repo.commit_sha("V2")}
    assert manifest["base_commit"] == repo.commit_sha("V1")
    # git itself reads the pack and index
    listed = git(repo.path, "verify-pack", "-v", str(tmp_path / "p.idx"))
    shas = {line.split()[0] for line in listed.splitlines() if len(line.split()) >= 3 and len(line.split()[0]) == 40}
    assert repo.commit_sha("V2") in shas and repo.commit_sha("V1") not in shas
    assert len(shas) == manifest["objects"]
    # whole history in one pack
    full = ProjectRepo.restore(repos.track(tmp_path / "full.git"), [("all", repo.export_pack(None, "V4"))])
    assert sorted(full.versions()) == ["V1", "V2", "V4"]  # V3 is not an ancestor of V4


def _corrupt_pack_object(data: bytes) -> bytes:
    """Flip a byte inside the pack body and fix every checksum, so only object-level checks can notice."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pack, idx, manifest = zf.read("objects.pack"), zf.read("objects.idx"), json.loads(zf.read("manifest.json"))
    body = bytearray(pack[:-20])
    body[len(body) // 2] ^= 0xFF
    trailer = hashlib.sha1(bytes(body)).digest()
    idx_body = idx[:-40] + trailer
    manifest["pack_sha1"] = trailer.hex()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("objects.pack", bytes(body) + trailer)
        zf.writestr("objects.idx", idx_body + hashlib.sha1(idx_body).digest())
        zf.writestr("manifest.json", json.dumps(manifest))
    return out.getvalue()


def _flip_zip_byte(data: bytes) -> bytes:
    buf = bytearray(data)
    buf[len(buf) // 3] ^= 0xFF
    return bytes(buf)


@pytest.mark.parametrize("damage", [_flip_zip_byte, _corrupt_pack_object, lambda d: d[: len(d) // 2], lambda d: b""])
def test_corrupted_pack_is_named_and_nothing_is_left(repos: Repos, workspace: Path, tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    _repo, packs = _history(repos, workspace)
    name, data = packs[2]
    packs[2] = (name, damage(data))
    target = tmp_path / "restore" / "repo.git"
    with pytest.raises(HistoryError) as err:
        ProjectRepo.restore(target, packs)
    assert err.value.code == "corrupt_pack"
    assert name in str(err.value)
    assert err.value.detail["pack"] == name
    assert not target.exists()
    assert list((tmp_path / "restore").iterdir()) == []


def test_missing_pack_is_named_and_nothing_is_left(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    _repo, packs = _history(repos, workspace)
    del packs[1]  # V1 -> V2 lost: V3 and V4 build on V2
    target = tmp_path / "restored" / "repo.git"
    with pytest.raises(HistoryError) as err:
        ProjectRepo.restore(target, packs)
    assert err.value.code == "missing_pack"
    assert "git_V2_to_V3.pack.zip" in str(err.value)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_restore_refuses_a_non_empty_path(repos: Repos, workspace: Path, tmp_path: Path) -> None:
    repo, packs = _history(repos, workspace)
    with pytest.raises(HistoryError) as err:
        ProjectRepo.restore(repo.path, packs)
    assert err.value.code == "path_not_empty"
    assert sorted(repo.versions()) == ["V1", "V2", "V3", "V4"]
