"""One door for build output (issues 23 and 24): a type check running beside the bundle swaps a directory of dist/
for a link to a secret outside the moment the daemon opens dist/ (inotify), and nothing outside reaches the zip,
the deployed preview or refs/dist; a name that is not UTF-8 fails the version as invalid_output naming the file,
with no temp file left; a failed deploy leaves no zip; the staged copy never outlives its build."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from daemon.core import quotas
from daemon.core.db import ProjectVersion
from daemon.intake.submit import BuildRequest, submit_new
from tests.fakes.tiny_generator import contract_json
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.fakes import page_project
from tests.unit.pipeline.test_pipeline import InlineQueue

SECRET = "hmac-secret-3f9c2a-never-published"
FILES = 120  # files zipped before zzz/: the window between the daemon's first open and zzz/ (no timing asserted)

# The "type check": watches dist/ with inotify; once the bundle is done (.built), the first open of dist/a000.txt
# is the daemon's, and it swaps dist/zzz (a dir) for a link to the outside dir holding `hmac_secret`.
SWAPPER = f"""#!{sys.executable}
import ctypes, os, select, struct, sys, time
outside = open("outside.txt").read().strip()
os.makedirs("dist", exist_ok=True)
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
assert libc.inotify_add_watch(fd, b"dist", 0x20) >= 0  # IN_OPEN
open(".watching", "w").close()
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    if not select.select([fd], [], [], 1)[0]:
        continue
    buf, off = os.read(fd, 65536), 0
    while off < len(buf):
        _wd, mask, _cookie, n = struct.unpack_from("iIII", buf, off)
        name = buf[off + 16: off + 16 + n].rstrip(b"\\0")
        off += 16 + n
        if name == b"a000.txt" and os.path.exists(".built"):
            os.rename("dist/zzz", "dist/zzz.old")
            os.symlink(outside, "dist/zzz")
            os.symlink(outside + "/hmac_secret", "dist/zzz.html.tmp")
            os.replace("dist/zzz.html.tmp", "dist/zzz.html")
            sys.exit(0)
sys.exit(0)
"""
BUNDLE = f"""{sys.executable} -c '
import os, time
deadline = time.monotonic() + 60
while not os.path.exists(".watching") and time.monotonic() < deadline:
    time.sleep(0.02)
os.makedirs("dist/zzz", exist_ok=True)
for i in range({FILES}):
    open(f"dist/a{{i:03d}}.txt", "w").write(("line %d of the page\\n" % i) * 4000)
open("dist/index.html", "w").write("<h1>Raced</h1>")
open("dist/zzz/hmac_secret", "w").write("not the secret\\n")
open("dist/zzz.html", "w").write("a page\\n")
open(".built", "w").close()
'"""


def _build(b: Bench, contract: dict[str, Any]) -> ProjectVersion:
    b.gen.queue.append(contract)
    q = InlineQueue()
    v = submit_new(b.rt, q, BuildRequest("u1", "p1", "a page"))  # type: ignore[arg-type]
    b.pipeline.run(q.ids[0])
    b.pipeline.pending_checks.drain()
    return ProjectVersion.get_by_id(v.version_id)


def _zip_path(b: Bench, v: ProjectVersion) -> Path:
    return b.rt.layout.local_object(b.rt.layout.artifact_key("u1", "p1", v.version_id))


def _git(b: Bench, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "--git-dir", str(b.rt.repo("u1", "p1").path), *args], capture_output=True,
                          text=True)


def test_a_check_swapping_dist_for_links_while_the_daemon_reads_publishes_nothing_outside(
        bench: Bench, tmp_path: Path) -> None:
    outside = tmp_path / "outside"  # the data dir's secrets, as far as the attack can tell
    outside.mkdir()
    (outside / "hmac_secret").write_text(SECRET)
    tsconfig = json.dumps({"compilerOptions": {"noEmit": True}, "include": ["src"]})
    files = {"index.html": "<h1>Raced</h1>", "tsconfig.json": tsconfig, "outside.txt": str(outside),
             "fake-bin/tsc": SWAPPER, "bundle.sh": BUNDLE}
    v = _build(bench, json.loads(contract_json("tsc --noEmit && sh bundle.sh", files)))
    assert v.status == "deployed", v.failure_message
    log = bench.rt.layout.log_path(v.version_id).read_text()
    assert "type check split off" in log or "split" in log
    work = bench.rt.layout.project_dir("u1", "p1") / "work"
    assert (work / "dist" / "zzz").is_symlink()  # the attack ran: the swap happened during this build

    with zipfile.ZipFile(_zip_path(bench, v)) as zf:
        names = zf.namelist()
        blobs = [zf.read(n) for n in names]
    assert "index.html" in names and "a000.txt" in names
    assert not any(SECRET.encode() in blob for blob in blobs), [n for n, blob in zip(names, blobs, strict=True)
                                                               if SECRET.encode() in blob]
    for site in bench.dep.sites.values():
        assert not any(SECRET.encode() in blob for blob in site.values())
    assert v.version_id in bench.rt.repo("u1", "p1").dist_versions()
    grep = _git(bench, "grep", "-I", "-l", SECRET, f"refs/dist/{v.version_id}")
    assert grep.returncode == 1 and grep.stdout == "", grep.stdout  # 1: no match in the dist commit
    tree = _git(bench, "ls-tree", "-r", "--name-only", f"refs/dist/{v.version_id}").stdout.split()
    assert "dist/index.html" in tree
    assert not (bench.rt.layout.tmp / f"out-{v.version_id}").exists()


def test_an_output_name_that_is_not_utf8_is_invalid_output_naming_it_and_leaves_no_temp_file(bench: Bench) -> None:
    build = "mkdir -p dist && cp index.html dist/ && touch \"dist/caf$(printf '\\351').html\""
    v = _build(bench, page_project("Accents", build=build))
    assert (v.status, v.failure_reason) == ("failed", "invalid_output"), v.failure_message
    assert "caf\\xe9.html" in (v.failure_message or "") and "UTF-8" in (v.failure_message or "")
    objects = bench.rt.layout.data_dir / "objects"
    assert not [p for p in objects.rglob("*") if p.is_file()]  # no zip, no .zip.tmp
    assert not (bench.rt.layout.tmp / f"out-{v.version_id}").exists()
    assert bench.dep.sites == {}


def test_a_failed_deploy_leaves_no_zip_and_no_stored_bytes(bench: Bench) -> None:
    bench.dep.fail_with = "platform said no"
    v = _build(bench, page_project("Heavy", build="mkdir -p dist && cp index.html dist/ && "
                                                  "head -c 300000 /dev/urandom > dist/blob.bin"))
    assert (v.status, v.failure_reason) == ("failed", "deploy_failed")
    assert not _zip_path(bench, v).exists()
    assert not [p for p in (bench.rt.layout.data_dir / "objects").rglob("*") if p.is_file()]
    assert quotas.storage_bytes("u1") == 0
    assert not (bench.rt.layout.tmp / f"out-{v.version_id}").exists()


def test_output_past_the_file_count_cap_is_output_limit_naming_where(bench: Bench, monkeypatch: Any) -> None:
    monkeypatch.setattr("daemon.project.staging.MAX_ENTRIES", 50)
    v = _build(bench, page_project("Many", build="mkdir -p dist && cp index.html dist/ && "
                                                 "for i in $(seq 1 60); do : > dist/e$i; done"))
    assert (v.status, v.failure_reason) == ("failed", "output_limit"), v.failure_message
    assert "more than 50 files" in (v.failure_message or "")
    assert not (bench.rt.layout.tmp / f"out-{v.version_id}").exists()


def test_start_up_removes_what_a_killed_build_left_staged_and_zipped(bench: Bench) -> None:
    """SIGKILL between the zip and going live: at start-up (serve.start's recovery) the staged copy and the zip of
    the interrupted version go, and the user's stored bytes are recounted."""
    from daemon.core import versions
    from daemon.project import staging
    from daemon.publish import artifacts

    v = _build(bench, page_project("Kept"))  # a live version whose zip must stay
    q = InlineQueue()
    bench.gen.queue.append(page_project("Killed"))
    killed = submit_new(bench.rt, q, BuildRequest("u1", "p2", "x"))  # type: ignore[arg-type]
    versions.update(bench.rt.outbox, killed.version_id, status="deploying")
    zpath = bench.rt.layout.local_object(bench.rt.layout.artifact_key("u1", "p2", killed.version_id))
    zpath.parent.mkdir(parents=True)
    zpath.write_bytes(b"PK" + b"\0" * 5000)
    quotas.add_storage("u1", 5002)
    (staging.root(bench.rt, killed.version_id) / "dist").mkdir(parents=True)

    failed, _ = versions.recover_interrupted(bench.rt.outbox)
    assert failed == [killed.version_id]
    assert staging.sweep(bench.rt) == 1
    artifacts.drop_unfinished(bench.rt, failed)
    assert not zpath.exists() and not staging.root(bench.rt, killed.version_id).exists()
    assert _zip_path(bench, v).is_file()
    assert quotas.storage_bytes("u1") == sum(p.stat().st_size for p in
                                             (bench.rt.layout.data_dir / "objects" / "u1").rglob("*")
                                             if p.is_file())
