"""The local deployer against a real filesystem: copies, symlinks, atomicity, artifact zips."""

from __future__ import annotations

import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from daemon.deployers.base import DeployError
from daemon.deployers.local import LocalDeployer
from tests.integration.deployers.deployer_contract import DeployerContract
from tests.integration.deployers.deployer_support import ASSET, INDEX, VERSION_ID, LogLines, request_for


class TestLocalDeployerContract(DeployerContract):
    """The shared Deployer contract, run against the local backend."""


def listing(root: Path) -> set[str]:
    """Every path under root, relative, without following links."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_deploy_copies_the_tree_and_forms_the_url(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    dep = deployer.deploy(request_for(site), log)
    assert dep.deployment_id == f"proj-1-{VERSION_ID.lower()}"
    assert dep.url == f"http://proj-1-{VERSION_ID.lower()}.localhost:8080/"
    assert dep.state == "deployed"
    root = deployer.previews_dir / dep.deployment_id
    assert (root / "index.html").read_bytes() == INDEX
    assert (root / "assets" / "index-abc123.js").read_bytes() == ASSET
    assert (root / "big.bin").read_bytes() == (site / "big.bin").read_bytes()
    assert (root / "docs" / "guide" / "index.html").is_file()
    assert os.listdir(deployer.previews_dir) == [dep.deployment_id]


def test_symlinks_are_skipped_logged_and_never_copied(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    dep = deployer.deploy(request_for(site), log)
    root = deployer.previews_dir / dep.deployment_id
    paths = listing(root)
    for link in ("passwd", "leak.txt", "assets/leak-abc123.js", "etc"):
        assert link not in paths
        assert any(f"skipped symlink {link}" in line for line in log)
    assert not any(p.is_symlink() for p in root.rglob("*"))
    passwd = Path("/etc/passwd").read_bytes()
    assert all(p.read_bytes() != passwd for p in root.rglob("*") if p.is_file())


def test_fifo_in_output_is_skipped(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    os.mkfifo(site / "pipe")
    dep = deployer.deploy(request_for(site), log)
    assert not (deployer.previews_dir / dep.deployment_id / "pipe").exists()
    assert any("skipped pipe: not a regular file" in line for line in log)


def test_output_dir_that_is_a_symlink_is_refused(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    link = site.parent / "dist-link"
    link.symlink_to(site)
    with pytest.raises(DeployError, match="symlink"):
        deployer.deploy(request_for(link), log)
    assert os.listdir(deployer.previews_dir) == []


def test_output_that_is_a_file_is_refused(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    with pytest.raises(DeployError, match="not a directory"):
        deployer.deploy(request_for(site / "index.html"), log)


def test_failed_copy_leaves_no_half_directory(previews: Path, site: Path, log: LogLines) -> None:
    small = LocalDeployer(previews, max_bytes=1024 * 1024)  # big.bin alone passes the cap mid-copy
    with pytest.raises(DeployError, match="byte cap"):
        small.deploy(request_for(site), log)
    assert os.listdir(previews) == []


def test_failed_redeploy_keeps_the_previous_deployment(previews: Path, site: Path, log: LogLines) -> None:
    dep = LocalDeployer(previews).deploy(request_for(site), log)
    with pytest.raises(DeployError):
        LocalDeployer(previews, max_bytes=1024 * 1024).deploy(request_for(site), log)
    assert os.listdir(previews) == [dep.deployment_id]
    assert (previews / dep.deployment_id / "index.html").read_bytes() == INDEX


def test_redeploy_of_the_same_version_replaces_it(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    deployer.deploy(request_for(site), log)
    (site / "index.html").write_bytes(b"v2")
    dep = deployer.deploy(request_for(site), log)
    assert (deployer.previews_dir / dep.deployment_id / "index.html").read_bytes() == b"v2"
    assert os.listdir(deployer.previews_dir) == [dep.deployment_id]


def test_status_and_delete(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    dep = deployer.deploy(request_for(site), log)
    assert deployer.status(dep.deployment_id).state == "deployed"
    assert deployer.status(dep.deployment_id).url == dep.url
    deployer.delete(dep.deployment_id)
    gone = deployer.status(dep.deployment_id)
    assert (gone.state, gone.detail) == ("failed", "not found")
    assert os.listdir(deployer.previews_dir) == []
    deployer.delete(dep.deployment_id)


@pytest.mark.parametrize("bad", ["../x", "UPPER", "a/b", "", "-a", "a" * 64])
def test_status_and_delete_refuse_bad_ids(deployer: LocalDeployer, bad: str) -> None:
    with pytest.raises(DeployError):
        deployer.status(bad)
    with pytest.raises(DeployError):
        deployer.delete(bad)


def test_sweep_partial_removes_leftovers(deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    dep = deployer.deploy(request_for(site), log)
    (deployer.previews_dir / ".tmp-x-1234").mkdir()
    (deployer.previews_dir / ".tmp-x-1234" / "half.js").write_bytes(b"")
    (deployer.previews_dir / ".trash-y-5678").mkdir()
    assert sorted(deployer.sweep_partial()) == [".tmp-x-1234", ".trash-y-5678"]
    assert os.listdir(deployer.previews_dir) == [dep.deployment_id]


# -- artifact zips --------------------------------------------------------------------------------------


def zip_site(site: Path, dest: Path, prefix: str = "") -> Path:
    """Zip the regular files of a site, as the pipeline's artifact step would."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(site.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, prefix + str(path.relative_to(site)))
    return dest


def test_deploy_zip_round_trip(deployer: LocalDeployer, site: Path, tmp_path: Path, log: LogLines) -> None:
    artifact = zip_site(site, tmp_path / "a.zip")
    dep = deployer.deploy_zip(artifact, request_for(tmp_path), log)
    root = deployer.previews_dir / dep.deployment_id
    assert dep.state == "deployed"
    assert (root / "index.html").read_bytes() == INDEX
    assert (root / "big.bin").read_bytes() == (site / "big.bin").read_bytes()
    assert (root / "docs" / "guide" / "index.html").is_file()


def test_deploy_zip_with_a_prefix(deployer: LocalDeployer, site: Path, tmp_path: Path, log: LogLines) -> None:
    artifact = zip_site(site, tmp_path / "a.zip", prefix="dist/")
    with zipfile.ZipFile(artifact, "a") as zf:
        zf.writestr("package.json", "{}")
    dep = deployer.deploy_zip(artifact, request_for(tmp_path), log, prefix="dist")
    root = deployer.previews_dir / dep.deployment_id
    assert (root / "assets" / "index-abc123.js").read_bytes() == ASSET
    assert not (root / "package.json").exists()


def _entry(name: str, mode: int | None = None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix, so the mode bits in external_attr count
    if mode is not None:
        info.external_attr = mode << 16
    return info


HOSTILE: dict[str, list[tuple[zipfile.ZipInfo, bytes]]] = {
    "dotdot": [(_entry("index.html"), b"ok"), (_entry("../evil.txt"), b"x")],
    "nested-dotdot": [(_entry("assets/../../evil.txt"), b"x")],
    "absolute": [(_entry("/tmp/evil.txt"), b"x")],
    "backslash": [(_entry("..\\evil.txt"), b"x")],
    "drive": [(_entry("C:/evil.txt"), b"x")],
    "symlink": [(_entry("index.html"), b"ok"), (_entry("passwd", stat.S_IFLNK | 0o777), b"/etc/passwd")],
    "device": [(_entry("dev", stat.S_IFCHR | 0o644), b"")],
    "fifo": [(_entry("pipe", stat.S_IFIFO | 0o644), b"")],
    "duplicate": [(_entry("index.html"), b"a"), (_entry("index.html"), b"b")],
    "encrypted": [(_entry("index.html"), b"x")],
    "unknown_compression": [(_entry("index.html"), b"x")],
    "dot": [(_entry("./index.html"), b"x")],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_zips_are_refused_writing_nothing(
    deployer: LocalDeployer, tmp_path: Path, log: LogLines, kind: str
) -> None:
    artifact = tmp_path / "bad.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(artifact, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate name we write on purpose
        for info, data in HOSTILE[kind]:
            zf.writestr(info, data)
    if kind == "encrypted":  # zipfile clears flag bits on write; set "encrypted" in the headers by hand
        raw = bytearray(artifact.read_bytes())
        raw[raw.index(b"PK\x03\x04") + 6] |= 0x1
        raw[raw.index(b"PK\x01\x02") + 8] |= 0x1
        artifact.write_bytes(bytes(raw))
    if kind == "unknown_compression":  # a method number zipfile cannot read (99 = AE-x)
        raw = bytearray(artifact.read_bytes())
        raw[raw.index(b"PK\x03\x04") + 8] = 99
        raw[raw.index(b"PK\x01\x02") + 10] = 99
        artifact.write_bytes(bytes(raw))
    with pytest.raises(DeployError, match="refused zip entry"):
        deployer.deploy_zip(artifact, request_for(tmp_path), log)
    assert os.listdir(deployer.previews_dir) == []
    assert not (tmp_path / "evil.txt").exists()
    assert not (deployer.previews_dir.parent.parent / "evil.txt").exists()


def test_zip_over_the_size_cap_is_refused(previews: Path, tmp_path: Path, log: LogLines) -> None:
    artifact = tmp_path / "bomb.zip"
    with zipfile.ZipFile(artifact, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (2 * 1024 * 1024))
    with pytest.raises(DeployError, match="byte cap"):
        LocalDeployer(previews, max_bytes=1024 * 1024).deploy_zip(artifact, request_for(tmp_path), log)
    assert os.listdir(previews) == []


def test_corrupt_zip_fails_midway_and_leaves_nothing(deployer: LocalDeployer, tmp_path: Path, log: LogLines) -> None:
    artifact = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(artifact, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("index.html", b"fine")
        zf.writestr("assets/b.js", b"B" * 4096)
    raw = bytearray(artifact.read_bytes())
    at = raw.index(b"B" * 4096)
    raw[at + 100] = ord("C")  # the first file extracts; the second fails its CRC check
    artifact.write_bytes(bytes(raw))
    with pytest.raises(DeployError, match="unpacking the artifact failed"):
        deployer.deploy_zip(artifact, request_for(tmp_path), log)
    assert os.listdir(deployer.previews_dir) == []


def test_not_a_zip_is_refused(deployer: LocalDeployer, tmp_path: Path, log: LogLines) -> None:
    artifact = tmp_path / "a.zip"
    artifact.write_bytes(b"not a zip")
    with pytest.raises(DeployError, match="not a readable zip"):
        deployer.deploy_zip(artifact, request_for(tmp_path), log)
    with pytest.raises(DeployError, match="not a readable zip"):
        deployer.deploy_zip(tmp_path / "missing.zip", request_for(tmp_path), log)


def test_empty_zip_is_refused(deployer: LocalDeployer, tmp_path: Path, log: LogLines) -> None:
    artifact = tmp_path / "empty.zip"
    zipfile.ZipFile(artifact, "w").close()
    with pytest.raises(DeployError, match="no files"):
        deployer.deploy_zip(artifact, request_for(tmp_path), log)


NEXT_ID = "01JDQ8Z5V7K3M9QX2R4T6W8Y0B"


def _files(root: Path) -> dict[str, os.stat_result]:
    return {str(p.relative_to(root)): p.lstat() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def test_a_redeploy_links_unchanged_files_and_writes_the_changed_one(
        deployer: LocalDeployer, site: Path, log: LogLines) -> None:
    first = deployer.deploy(request_for(site), log)
    (site / "assets" / "index-abc123.js").write_bytes(b"console.log('changed');\n")
    (site / "big.bin").write_bytes(b"x" + (site / "big.bin").read_bytes()[1:])  # same size, first byte differs
    second = deployer.deploy(request_for(site, version_id=NEXT_ID), log)
    old = _files(deployer.previews_dir / first.deployment_id)
    new = _files(deployer.previews_dir / second.deployment_id)
    assert set(old) == set(new)
    changed = {"assets/index-abc123.js", "big.bin"}
    for rel, st in new.items():
        assert (deployer.previews_dir / second.deployment_id / rel).read_bytes() == (site / rel).read_bytes()
        assert stat.S_IMODE(st.st_mode) == 0o444  # deployed files are never written again
        assert (st.st_ino == old[rel].st_ino) is (rel not in changed), rel
    assert any(f"{len(new) - 2} unchanged files linked from the previous deployment" in line for line in log)
    # The first deployment is untouched: its changed files still hold the old bytes.
    assert (deployer.previews_dir / first.deployment_id / "assets" / "index-abc123.js").read_bytes() == ASSET
    deployer.delete(first.deployment_id)
    assert (deployer.previews_dir / second.deployment_id / "index.html").read_bytes() == INDEX


def test_a_tampered_previous_deployment_is_copied_from_never_linked_or_followed(
        deployer: LocalDeployer, site: Path, log: LogLines, tmp_path: Path) -> None:
    first = deployer.deploy(request_for(site), log)
    prev = deployer.previews_dir / first.deployment_id
    secret = tmp_path / "secret.html"
    secret.write_bytes(INDEX)  # the same bytes as the new index.html, reached only through a link
    (prev / "index.html").unlink()
    (prev / "index.html").symlink_to(secret)
    (prev / "about.html").chmod(0o644)  # writable: not a file this deployer left, never shared
    (prev / "docs").rename(prev / "docs-real")
    (prev / "docs").symlink_to(prev / "docs-real")
    second = deployer.deploy(request_for(site, version_id=NEXT_ID), log)
    root = deployer.previews_dir / second.deployment_id
    for rel in ("index.html", "about.html", "docs/guide/index.html"):
        st = (root / rel).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1, rel
        assert (root / rel).read_bytes() == (site / rel).read_bytes()
    assert secret.stat().st_nlink == 1
    assert (root / "favicon.svg").stat().st_ino == (prev / "favicon.svg").stat().st_ino
