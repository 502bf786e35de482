"""The packaged unit (systemd/previewd.service, unchanged) under systemd 252 as PID 1 in a cgroup-v2-only guest.

One boot serves every test here (tests/guest/service_driver.py does the work in the guest and writes facts): the
unprivileged service builds through its API with bubblewrap views in user namespaces, a build past its memory cap
is killed inside the delegated subtree, a hostile build's attacks on another tenant fail, `systemctl stop` during a
build leaves no process, and the start after it marks that build `interrupted` and builds again.
"""

from __future__ import annotations

import json

import pytest

from tests.guest.conftest import ServiceReport

# The session's one boot runs in the first test's setup: the suite's 600 s per-test cap does not fit it.
pytestmark = pytest.mark.timeout(3000)


def _no_error(f: dict[str, object]) -> None:
    errors = {k: v for k, v in f.items() if k.endswith("_error")}
    assert not errors, errors


def test_unit_as_shipped_starts_as_the_previewd_user(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    assert f["unit_as_shipped"] is True, f
    assert (f["start_rc"], f["active"], f["main_user"]) == (0, "active", "previewd"), f
    assert f["healthz_after"] is not None, f


def test_daemon_takes_the_delegated_v2_subtree(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    # Delegate=cpu memory pids: the unprivileged daemon moved itself into <unit>/daemon and enabled controllers.
    assert f["main_cgroup"] == "/system.slice/previewd.service/daemon", f
    assert {"memory", "pids"} <= set(f["subtree_control"]), f
    assert f["delegated_owner"] == "previewd", f
    assert "(sandbox cgroup_v2," in service_guest.journal, service_guest.journal[-2000:]


def test_builds_run_confined_as_the_unprivileged_user(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    _no_error(f)
    assert f["isolation"]["confined"] is True, f["isolation"]
    assert f["victim_build"]["status"] == "deployed", f
    assert f["victim_page"] == [200, "<h1>alice's page</h1>"], f
    assert f["victim_tree_owner"] == "previewd", f


def test_a_build_past_its_memory_cap_is_killed_in_the_delegated_subtree(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    assert (f["hog_build"]["status"], f["hog_build"]["failureReason"]) == ("failed", "memory_limit"), f
    # The running build's own group sits under the unit, with the configured caps written by the daemon.
    assert f["slow_cgroup"].startswith("/system.slice/previewd.service/previewd/build-"), f
    assert f["slow_limits"]["memory.max"] == str(256 * 2**20), f
    assert f["slow_limits"]["pids.max"] != "max", f


def test_hostile_build_reaches_no_other_tenant_no_secret_and_no_network(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    answers = f["hostile_answers"]
    assert len(answers) == 14, f.get("hostile_log", answers)
    assert {k for k, v in answers.items() if v != "no"} == set(), answers
    # On disk, as root sees it: the victim's tree, the caches and the data dir are as before.
    assert f["victim_tree_unchanged"] is True, f
    assert f["poison_files"] == [] and f["planted_link"] is False, f


def test_links_in_a_builds_output_are_never_followed(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    assert "LEAKED" not in json.dumps(f["hostile_link_fetches"]), f["hostile_link_fetches"]
    if f["hostile_build"]["status"] != "deployed":  # refusing the output is as good as dropping the links
        assert f["hostile_build"]["failureReason"] in ("invalid_output", "no_output"), f


def test_stop_during_a_build_leaves_no_process(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    assert f["slow_sleep_seen"] is True and f["slow_sleep_user"] == "previewd", f
    assert (f["stop_rc"], f["after_stop"]) == (0, "inactive"), f
    assert (f["leftover_procs"], f["leftover_named"], f["sleep_alive"]) == ([], [], False), f


def test_start_after_the_stop_marks_the_build_interrupted_and_builds_again(service_guest: ServiceReport) -> None:
    f = service_guest.facts
    assert f["restart_healthz_after"] is not None, f
    assert f["slow_after_restart"] == {"status": "failed", "failureReason": "interrupted"}, f
    assert f["after_restart_build"]["status"] == "deployed", f
    assert f["after_restart_page"] == [200, "<h1>alice's page</h1>"], f


def test_journal_carries_json_lines(service_guest: ServiceReport) -> None:
    lines = [ln for ln in service_guest.journal.splitlines() if ln.startswith("{")]
    assert any('"msg": "previewd ready on' in ln for ln in lines), service_guest.journal[-2000:]
    for ln in lines:
        json.loads(ln)
