"""A syscall filter keeps generated code off the kernel's rarer doors: a project's install script and its build,
run by the daemon as the build user, cannot make a namespace, mount, load BPF, open perf counters, keyrings or
io_uring, trace a sibling or load a module, and the build still deploys; /healthz?detail=1 says the filter is on.
Unconfined builds (a laptop without bubblewrap) get the same filter from the launcher."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.isolation_support import VICTIM_PAGE, build, log_of, page, start_daemon, victim_still_fine
from tests.support.live import LiveDaemon

pytestmark = pytest.mark.pnpm

DOORS = (Path(__file__).resolve().parents[1] / "support" / "seccomp_doors.py").read_text()
UNSHARE = "unshare -Ur true > {0}.txt 2>&1; echo exit=$? >> {0}.txt"
ATTACKS = {
    "doors": {"files": {"index.html": "<h1>doors</h1>", "doors.py": DOORS},
              "build": ("mkdir -p dist && python3 doors.py doors > dist/doors.json && python3 doors.py works > "
                        "dist/works.json && cp postinstall.txt index.html dist/ && " + UNSHARE.format("dist/build")),
              "extra": {"scripts": {"postinstall": UNSHARE.format("postinstall")}}},
    "unconfined": {"build": "mkdir -p dist && cp index.html dist/ && " + UNSHARE.format("dist/build")},
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    d = start_daemon(tmp_path_factory.mktemp("syscalls"), ATTACKS)
    try:
        assert page(d, build(d, "alice", "site", "victim")) == VICTIM_PAGE
        yield d
    finally:
        d.stop()


def test_generated_code_finds_the_kernels_rarer_doors_shut(live: LiveDaemon) -> None:
    body = build(live, "mallory", "doors", "doors")
    assert page(live, body) == "<h1>doors</h1>"
    doors = json.loads(page(live, body, "/doors.json"))
    refused = {k: v for k, v in doors.items() if k not in ("clone3", "x32_abi")}
    assert set(refused.values()) == {"EPERM"}, doors
    assert (doors["clone3"], doors["x32_abi"]) == ("ENOSYS", "killed:SIGSYS"), doors
    assert set(json.loads(page(live, body, "/works.json")).values()) == {"ok"}
    for step in ("postinstall", "build"):  # the install-time script and the build, each as the build user
        text = page(live, body, f"/{step}.txt")
        assert "Operation not permitted" in text and "exit=1" in text, (step, text)
    assert "> tiny postinstall" in log_of(live, body["versionId"])
    victim_still_fine(live)
    detail = live.get("/healthz", params={"detail": "1"}).json()
    assert detail["isolation"]["syscall_filter"]["on"] is True, detail
    assert "seccomp" in detail["isolation"]["syscall_filter"]["why"]
    assert live.get("/status").json()["sandbox"]["syscallFilter"] is True  # `daemonctl status`


def test_unconfined_builds_get_the_filter_too(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, ATTACKS, "[sandbox]\nreadonly_root = false\nallow_unconfined = true\n")
    try:
        body = build(d, "alice", "unconfined", "unconfined")
        assert "UNCONFINED BUILDS" in log_of(d, body["versionId"])
        text = page(d, body, "/build.txt")
        assert "Operation not permitted" in text and "exit=1" in text, text
        assert d.get("/healthz", params={"detail": "1"}).json()["isolation"]["syscall_filter"]["on"] is True
    finally:
        d.stop()
