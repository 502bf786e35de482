"""The limits under cgroup v2, in a guest with only the unified hierarchy, through the real sandbox runner.

Each row comes from `tests.guest.scenarios` run in the guest (one boot for the module); each test also names the
layer that ran, and where the kernel did the enforcing, the file it read it from.
"""

from __future__ import annotations

from tests.guest.conftest import GuestReport

GiB = 2**30


def test_guest_mounts_only_cgroup2_and_auto_picks_the_v2_layer(v2_guest: GuestReport) -> None:
    assert not v2_guest.error, v2_guest.error
    where = v2_guest.report["where"]
    assert where["cgroup_mounts"] == ["cgroup2"], where
    assert where["auto_layer"] == "cgroup_v2", where
    # The supervisor moved itself into the unit's `daemon` leaf, as under the packaged service.
    assert where["self_cgroup"] == "0::/system.slice/previewd.service/daemon", where
    boot = v2_guest.boot
    assert boot is not None
    assert boot.exit_code == 0, boot.log()[-2000:]


def test_memory_hog_is_oom_killed_by_memory_max(v2_guest: GuestReport) -> None:
    row = v2_guest.run("memory_hog")
    assert (row["reason"], row["layer"]) == ("memory_limit", "cgroup_v2"), row
    assert row["events"]["memory.events"]["oom_kill"] >= 1, row  # the kernel's own count, read by the layer
    assert row["detail"].endswith("the kernel OOM-killed it"), row
    # memory.max holds: the hog never got its next 16 MiB chunk past 1 GiB.
    assert row["allocated_mb"] * 2**20 <= GiB and row["peak_mb"] <= 1024, row


def test_fork_bomb_stops_at_pids_max(v2_guest: GuestReport) -> None:
    row = v2_guest.run("fork_bomb")
    assert (row["reason"], row["layer"]) == ("pids_limit", "cgroup_v2"), row
    assert row["events"]["pids.events"]["max"] >= 1, row  # forks the kernel refused at pids.max
    assert "a fork was refused" in row["detail"], row


def test_cpu_spinner_is_stopped_at_its_budget_from_cpu_stat(v2_guest: GuestReport) -> None:
    row = v2_guest.run("cpu_spinner")
    assert (row["reason"], row["layer"]) == ("cpu_limit", "cgroup_v2"), row
    assert row["detail"].startswith("cpu_limit: tree used"), row  # the layer's cpu.stat sum, not RLIMIT_CPU
    assert 1.0 <= row["cpu_seconds"] < 2.0, row


def test_double_forked_daemon_dies_with_the_tree_by_cgroup_kill(v2_guest: GuestReport) -> None:
    row = v2_guest.run("escaping_daemon")
    assert (row["reason"], row["exit_code"], row["layer"]) == ("ok", 0, "cgroup_v2"), row
    assert row["grandchild_pid"] is not None, row
    assert row["grandchild_alive"] is False, row
    assert row["cgroup_kill_writes"] >= 1, row


def test_output_flood_gets_output_limit(v2_guest: GuestReport) -> None:
    row = v2_guest.run("output_flood")
    assert (row["reason"], row["layer"]) == ("output_limit", "cgroup_v2"), row
    assert 100 < row["output_mb"] < 300, row


def test_no_build_cgroup_outlives_its_run(v2_guest: GuestReport) -> None:
    assert not v2_guest.error, v2_guest.error
    assert v2_guest.report["leftover_cgroups"] == [], v2_guest.report
