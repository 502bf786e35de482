"""A project's own postinstall writes big sparse files (a few bytes and a hole each: they pass every cap that counts
disk blocks). The daemon never reads them: its source snapshot is the contract's file set, so its peak memory stays
under a stated bound through the hostile build and the project's next rebuild, and a neighbour queued behind the
hostile build starts when the build ends, not after the daemon has chewed through the files."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, page, start_daemon, victim_still_fine
from tests.support.live import LiveDaemon

MiB = 2**20
FILES, FILE_MIB = 4, 256  # 1 GiB of apparent size, ~16 KiB on disk
PEAK_BOUND_MIB = 300  # the daemon's own resident high-water mark, whole run
NEIGHBOUR_START_S = 120  # a neighbour queued behind the hostile build starts within this
POSTINSTALL = (" && ".join(f"truncate -s {FILE_MIB}M big{i}.bin" for i in range(FILES))
               + " && echo registry=http://evil.invalid > .npmrc && mkdir -p src && echo x > src/.npmrc")
ATTACKS = {"sparse": {"build": "mkdir -p dist && cp index.html dist/",
                      "extra": {"scripts": {"postinstall": POSTINSTALL}}}}


def _peak_mib(d: LiveDaemon) -> float:
    """The daemon process's resident high-water mark (VmHWM: the kernel's, nothing sampled)."""
    assert d.proc is not None
    with open(f"/proc/{d.proc.pid}/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    d = start_daemon(tmp_path_factory.mktemp("sparse"), ATTACKS)
    try:
        assert page(d, build(d, "alice", "site", "victim")) == VICTIM_PAGE
        yield d
    finally:
        d.stop()


def test_sparse_files_from_a_postinstall_stay_out_of_history_and_the_daemon(live: LiveDaemon) -> None:
    normal = _peak_mib(live)  # after one normal build
    r = live.post("/build-preview-for-new-project", {"userId": "mallory", "projectId": "sparse", "prompt": "sparse"},
                  wait="false")
    assert r.status_code == 202, r.text
    hostile = r.json()["versionId"]
    queued = time.monotonic()
    r = live.post("/rebuild-preview", {"userId": "alice", "projectId": "site", "prompt": "victim again"},
                  wait="false")
    assert r.status_code == 202, r.text
    neighbour = r.json()["versionId"]
    live.wait_status(neighbour, ("building", "deploying", "deployed", "failed"), timeout=600)
    waited = time.monotonic() - queued
    v = live.wait_status(hostile, ("deployed", "failed"), timeout=600)
    assert v["status"] == "deployed", v
    assert live.wait_status(neighbour, ("deployed", "failed"))["status"] == "deployed"
    hostile_peak = _peak_mib(live)
    print(f"\ndaemon VmHWM: {normal:.0f} MiB after a normal build, {hostile_peak:.0f} MiB after the hostile build "
          f"({hostile_peak / normal:.2f}x); neighbour started {waited:.1f} s after it was queued")
    assert hostile_peak < PEAK_BOUND_MIB, f"daemon peak {hostile_peak:.0f} MiB (normal {normal:.0f} MiB)"
    work = live.tmp / "data" / "projects" / "mallory" / "sparse" / "work"
    assert (work / "big0.bin").stat().st_size == FILE_MIB * MiB  # the script ran and its files passed the caps
    repo = work.parent / "repo.git"

    def listed(version_id: str) -> set[str]:
        argv = ["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", f"refs/tags/{version_id}"]
        return set(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split())

    contract = {"package.json", "index.html", "pnpm-lock.yaml", "pnpm-workspace.yaml"}
    assert listed(hostile) == contract  # no big*.bin, no .npmrc, no src/.npmrc
    # the project's next rebuild reads its base (what the contract wrote) and stays small too
    again = build(live, "mallory", "sparse", "sparse again", new=False)
    assert again["success"] is True, again
    assert listed(again["versionId"]) == contract
    peak = _peak_mib(live)
    print(f"daemon VmHWM after the hostile project's rebuild: {peak:.0f} MiB ({peak / normal:.2f}x)")
    assert peak < PEAK_BOUND_MIB, f"daemon peak {peak:.0f} MiB (normal {normal:.0f} MiB)"
    assert waited < NEIGHBOUR_START_S, waited
    victim_still_fine(live)
