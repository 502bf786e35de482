"""Ordered views (bubblewrap): a hidden data dir with one project shown again, node_modules read-only over its hard
links to a store, the drop to a build user with no capabilities, and the disk cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sandbox
from sandbox import FsView, Limits
from sandbox.fsview import Mount
from sandbox.output import disk_usage

LIMITS = Limits(cpu_seconds=20, memory_bytes=256 * 2**20, wall_seconds=30)


def _sh(script: str, cwd: Path, view: FsView | None, lines: list[str], **kw: object) -> sandbox.Result:
    return sandbox.run(["sh", "-c", script], cwd=cwd, env=sandbox.safe_env({}, home=cwd),
                       limits=kw.pop("limits", LIMITS), on_line=lines.append, view=view, **kw)  # type: ignore[arg-type]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "store").mkdir(parents=True)
    (d / "store" / "pkg.js").write_text("module.exports = 1\n")
    (d / "state.db").write_text("every user's rows")
    for p in ("a", "b"):
        (d / "projects" / p / "work" / "node_modules").mkdir(parents=True)
    (d / "projects" / "b" / "work" / "secret.txt").write_text("b's sources")
    os.link(d / "store" / "pkg.js", d / "projects" / "a" / "work" / "node_modules" / "pkg.js")
    (d / "projects" / "a" / "work" / "node_modules" / ".vite").mkdir()
    return d


def _code_view(d: Path) -> FsView:
    work = d / "projects" / "a" / "work"
    return FsView(mounts=(Mount("hide", d), Mount("rw", work), Mount("ro", work / "node_modules"),
                          Mount("rw", work / "node_modules" / ".vite")))


def test_a_hidden_data_dir_shows_only_the_project_bound_again(data: Path) -> None:
    work = data / "projects" / "a" / "work"
    lines: list[str] = []
    script = (f"ls {data}; ls {data}/projects; cat {data}/projects/b/work/secret.txt 2>/dev/null || echo b=hidden; "
              f"test -e {data}/state.db && echo state=visible || echo state=hidden; echo mine > out.txt && echo ok")
    res = _sh(script, work, _code_view(data), lines)
    assert res.reason == "ok", (res.detail, lines)
    assert lines == ["projects", "a", "b=hidden", "state=hidden", "ok"], lines
    assert (work / "out.txt").read_text() == "mine\n"


def test_read_only_node_modules_stops_a_write_through_the_stores_hard_link(data: Path) -> None:
    work = data / "projects" / "a" / "work"
    assert (work / "node_modules" / "pkg.js").stat().st_nlink == 2
    lines: list[str] = []
    script = ("(echo pwned >> node_modules/pkg.js) 2>/dev/null && echo append=yes || echo append=no; "
              "(ln node_modules/pkg.js stolen.js) 2>/dev/null && echo link=yes || echo link=no; "
              "(echo cache > node_modules/.vite/c) && echo cache=yes")
    res = _sh(script, work, _code_view(data), lines)
    assert res.reason == "ok", (res.detail, lines)
    assert lines == ["append=no", "link=no", "cache=yes"], lines
    assert (data / "store" / "pkg.js").read_text() == "module.exports = 1\n"


def test_root_drops_every_capability_and_can_switch_to_the_build_user(data: Path) -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does); user switching needs it"
    work = data / "projects" / "a" / "work"
    os.chown(work, 65534, 65534)
    lines: list[str] = []
    # The step's private /tmp and /dev/shm take the build user's writes (mktemp, compilers' caches), shared-tmp style.
    script = ("id -u; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status | awk '{print $2}'; touch mine && echo wrote; "
              "t=$(mktemp) && echo x > \"$t\" && echo x > /dev/shm/s && stat -c %a /tmp /dev/shm")
    res = _sh(script, work, _code_view(data), lines, user="nobody")
    assert res.reason == "ok", (res.detail, lines)
    assert lines == ["65534", "0000000000000000", "0000000000000000", "0000000000000000", "wrote", "1777",
                     "1777"], lines
    lines.clear()
    res = _sh("id -u; grep '^CapEff' /proc/self/status | awk '{print $2}'", work, _code_view(data), lines)
    assert lines == ["0", "0000000000000000"], lines  # root's own steps run without capabilities


def test_the_step_sees_no_process_outside_its_pid_namespace(tmp_path: Path) -> None:
    lines: list[str] = []
    res = _sh(f"test -e /proc/{os.getpid()} && echo daemon=visible || echo daemon=hidden", tmp_path,
              FsView(), lines)
    assert res.reason == "ok" and lines == ["daemon=hidden"], lines


def test_disk_cap_stops_a_flood_into_a_disk_root(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    lines: list[str] = []
    limits = Limits(cpu_seconds=20, memory_bytes=256 * 2**20, wall_seconds=60, disk_bytes=16 * 2**20)
    res = _sh(f"head -c 300000000 /dev/zero > {cache}/flood; echo finished", tmp_path, None, lines, limits=limits,
              disk_roots=[(cache, ())])
    assert res.reason == "disk_limit", (res.detail, lines)
    assert "limit 16.00 MiB" in res.detail and res.disk_bytes > 16 * 2**20
    # `disk_base` counts what lies outside the roots (node_modules, read-only to the step): here it is full.
    lines.clear()
    res = _sh("echo hi > x", tmp_path, None, lines, limits=limits, disk_roots=[(cache, ())],
              disk_base=17 * 2**20)
    assert res.reason == "disk_limit", res.detail


def test_a_run_within_the_disk_cap_reports_what_its_roots_hold(tmp_path: Path) -> None:
    lines: list[str] = []
    res = _sh("head -c 1000000 /dev/zero > f", tmp_path, None, lines, disk_roots=[(tmp_path, ())])
    assert res.reason == "ok" and 1_000_000 <= res.disk_bytes < 2_000_000, res


def test_anchored_excludes_skip_only_the_top_level_dir(tmp_path: Path) -> None:
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "big").write_bytes(b"x" * 100_000)
    (tmp_path / "src" / "node_modules").mkdir(parents=True)
    (tmp_path / "src" / "node_modules" / "flood").write_bytes(b"x" * 200_000)
    assert disk_usage(tmp_path, ["node_modules"]) < 100_000  # any depth
    assert 200_000 <= disk_usage(tmp_path, ["/node_modules"]) < 300_000  # the top one only


def test_nice_lowers_the_trees_cpu_priority(tmp_path: Path) -> None:
    lines: list[str] = []
    res = _sh("cut -d' ' -f19 /proc/self/stat", tmp_path, None, lines, nice=7)
    assert res.reason == "ok" and int(lines[-1]) == os.getpriority(os.PRIO_PROCESS, 0) + 7, lines
