"""Pure logic of the sandbox: limits, env allow-list, log capping, output accounting, argument checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sandbox
from sandbox import Limits, safe_env
from sandbox.layers import cgfs
from sandbox.layers.watchdog import read_stat
from sandbox.logsink import MAX_LINE, LogSink
from sandbox.output import MIN_INODE_BYTES, disk_usage
from sandbox.result import fmt_bytes


@pytest.mark.parametrize(
    "kw",
    [{"cpu_seconds": 0}, {"memory_bytes": -1}, {"pids": 1.5}, {"wall_seconds": float("inf")},
     {"log_bytes": True}, {"output_bytes": "100"}],
)
def test_limits_reject_bad_values(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        Limits(**kw)  # type: ignore[arg-type]


def test_limits_defaults_match_the_seed() -> None:
    lim = Limits()
    assert (lim.cpu_seconds, lim.memory_bytes, lim.output_bytes) == (300.0, 1 << 30, 100 * 2**20)


def test_safe_env_takes_nothing_from_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    env = safe_env({"PNPM_HOME": "/x"}, home=tmp_path)
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "CI", "PNPM_HOME"}
    assert env["HOME"] == str(tmp_path) and env["CI"] == "true"


@pytest.mark.parametrize("key,value", [("A=B", "x"), ("", "x"), ("K", "a\0b"), ("K", 3)])
def test_safe_env_rejects_unexecutable_entries(key: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        safe_env({key: value}, home=tmp_path)


def test_log_sink_caps_and_notifies_once() -> None:
    got: list[str] = []
    sink = LogSink(got.append, cap=10)
    sink.feed(b"abc\nde")
    sink.feed(b"f\nghijkl\nmore\n")
    sink.feed(b"ignored\n")
    sink.close()
    assert got[:2] == ["abc", "def"]
    assert len(got) == 3 and got[2].startswith("[sandbox] log truncated at 8 B")
    assert (sink.captured, sink.truncated) == (8, True)


def test_log_sink_splits_endless_lines_and_replaces_bad_bytes() -> None:
    got: list[str] = []
    sink = LogSink(got.append, cap=1 << 30)
    sink.feed(b"\xff" + b"a" * (MAX_LINE * 2))
    sink.close()
    assert [len(x) for x in got] == [MAX_LINE, MAX_LINE, 1]
    assert got[0][0] == "\ufffd"


def test_disk_usage_skips_excluded_dirs_and_never_follows_links(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "node_modules" / "big").mkdir(parents=True)
    (root / "node_modules" / "big" / "blob").write_bytes(b"x" * 1_000_000)
    (root / "pkg" / "node_modules").mkdir(parents=True)
    (root / "pkg" / "node_modules" / "blob").write_bytes(b"x" * 1_000_000)
    (root / "dist" / "cache").mkdir(parents=True)
    (root / "dist" / "cache" / "blob").write_bytes(b"x" * 1_000_000)
    outside = tmp_path / "outside"
    outside.write_bytes(b"y" * 5_000_000)
    (root / "dist" / "leak").symlink_to(outside)
    (root / "dist" / "dirleak").symlink_to(tmp_path)
    used = disk_usage(root, ["node_modules", "dist/cache"])
    # entries left: pkg, dist, dist/leak, dist/dirleak (links counted as themselves)
    assert used == 4 * MIN_INODE_BYTES
    assert disk_usage(root, ["node_modules"]) >= 1_000_000


def test_disk_usage_charges_each_inode(tmp_path: Path) -> None:
    for i in range(100):
        (tmp_path / str(i)).touch()
    assert disk_usage(tmp_path) == 100 * MIN_INODE_BYTES


def test_fmt_bytes() -> None:
    assert (fmt_bytes(512), fmt_bytes(1 << 30), fmt_bytes(3 * 2**20 // 2)) == ("512 B", "1.00 GiB", "1.50 MiB")


def test_select_layer_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown sandbox layer 'bogus'"):
        sandbox.select_layer("bogus")
    assert sandbox.select_layer("auto") in ("cgroup_v2", "cgroup_v1", "watchdog")


@pytest.mark.parametrize(
    "argv,cwd,env,match",
    [
        ([], ".", {}, "argv is empty"),
        ("ls -l", ".", {}, "not one string"),
        (["ls", "a\0b"], ".", {}, "NUL"),
        (["ls"], "/nonexistent/dir", {}, "does not exist"),
        (["ls"], ".", {"A=B": "c"}, "invalid environment variable"),
    ],
)
def test_run_rejects_bad_arguments(argv: object, cwd: str, env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sandbox.run(argv, Path(cwd), env, Limits())  # type: ignore[arg-type]


def test_run_rejects_unknown_user_and_layer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown user"):
        sandbox.run(["true"], tmp_path, {}, Limits(), user="no-such-user-xyz")
    with pytest.raises(ValueError, match="unknown sandbox layer"):
        sandbox.run(["true"], tmp_path, {}, Limits(), layer="nsjail")


def test_cgroup_path_join_and_flat_files(tmp_path: Path) -> None:
    assert cgfs._join("/sys/fs/cgroup/memory", "/", "/a/b") == Path("/sys/fs/cgroup/memory/a/b")
    assert cgfs._join("/sys/fs/cgroup", "/a", "/a/b") == Path("/sys/fs/cgroup/b")
    (tmp_path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 10\nbroken\n")
    assert cgfs.read_kv(tmp_path / "cpu.stat") == {"usage_usec": 1500000, "user_usec": 10}
    assert cgfs.read_int(tmp_path / "missing", 7) == 7
    assert cgfs.unique_name() != cgfs.unique_name()
    assert cgfs.unique_name().startswith(f"b{os.getpid()}-")


def test_read_stat_of_self() -> None:
    st = read_stat(os.getpid())
    assert st is not None and st.ppid == os.getppid() and st.threads >= 1
    assert read_stat(2**22 + 1) is None
