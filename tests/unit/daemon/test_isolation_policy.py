"""The isolation policy's small parts: fail closed, who runs generated code, the install-time script plan, the
package.json policy, the generator's environment, and a private data dir."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from daemon.core import hardening
from daemon.generators import _proc
from daemon.project import isolation, packagejson
from daemon.project.buildlog import BuildLog
from daemon.steps import pipeline, scripts
from sandbox.layers.base import Availability
from tests.support import make_config


def _bwrap(monkeypatch: pytest.MonkeyPatch, available: bool) -> None:
    why = "bwrap works" if available else "bubblewrap (bwrap) is not installed: install it with apt-get"
    monkeypatch.setattr(isolation, "bwrap_availability", lambda: Availability(available, why))


def test_builds_are_refused_without_the_isolation_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _bwrap(monkeypatch, False)
    conf = isolation.confinement(make_config(tmp_path))
    assert (conf.confined, conf.allowed) == (False, False)
    assert "not installed" in conf.why and "allow_unconfined = true" in conf.fix
    off = isolation.confinement(make_config(tmp_path, "[sandbox]\nallow_unconfined = true\n"))
    assert (off.confined, off.allowed) == (False, True)
    assert off.as_dict()["WARNING"] == isolation.UNCONFINED_WARNING
    _bwrap(monkeypatch, True)
    assert isolation.confinement(make_config(tmp_path)).confined is True
    views_off = isolation.confinement(make_config(tmp_path, "[sandbox]\nreadonly_root = false\n"))
    assert views_off.allowed is False and "readonly_root = false" in views_off.why


def test_generated_code_runs_as_nobody_under_a_root_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert os.geteuid() == 0, "the suite runs as root (CI does)"
    _bwrap(monkeypatch, True)
    cfg = make_config(tmp_path)
    assert isolation.code_user(cfg) == "nobody" and isolation.code_ids(cfg) == (65534, 65534)
    assert isolation.code_user(make_config(tmp_path, "[sandbox]\nbuild_user = \"daemon\"\n")) == "daemon"
    _bwrap(monkeypatch, False)  # unconfined, nobody could not reach the workspace through the 0700 data dir
    assert isolation.code_user(make_config(tmp_path, "[sandbox]\nallow_unconfined = true\n")) is None


def test_project_dirs_refuse_a_planted_link(tmp_path: Path) -> None:
    dirs = isolation.project_dirs(tmp_path, "u", "p")
    assert dirs.work.is_dir() and dirs.home.is_dir() and dirs.xdg_cache.is_dir()
    (tmp_path / "previews").mkdir()
    (tmp_path / "projects" / "u" / "evil").symlink_to(tmp_path / "previews")
    with pytest.raises(isolation.UnsafeLayout, match="nothing was written through it"):
        isolation.project_dirs(tmp_path, "u", "evil")
    assert list((tmp_path / "previews").iterdir()) == []
    with pytest.raises(isolation.UnsafeLayout, match="invalid id"):
        isolation.project_dirs(tmp_path, "..", "p")


def test_code_view_hides_the_data_dir_the_store_and_run_then_shows_the_project(tmp_path: Path) -> None:
    from sandbox.fsview import Mount

    (tmp_path / "data").mkdir()
    dirs = isolation.project_dirs(tmp_path / "data", "u", "p")
    store = Path("/srv/previewd-store")  # outside the data dir and /tmp: it needs a mask of its own
    view = isolation.code_view(tmp_path / "data", store, dirs)
    kinds = [(m.kind, m.path) for m in view.mounts]
    assert kinds[:3] == [("hide", tmp_path / "data"), ("hide", store), ("hide", Path("/run"))]
    assert ("ro", dirs.work / "node_modules") in kinds and ("rw", dirs.work) in kinds
    assert kinds.index(("rw", dirs.work)) < kinds.index(("ro", dirs.work / "node_modules")) < \
        kinds.index(("rw", dirs.work / "node_modules" / ".vite"))
    assert all(isinstance(m, Mount) for m in view.mounts)


def _pkg(path: Path, data: dict[str, object]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "package.json").write_text(json.dumps(data))


def test_script_plan_runs_allow_listed_dependencies_then_the_project_in_npm_order(tmp_path: Path) -> None:
    vstore = tmp_path / "node_modules" / ".pnpm"
    _pkg(vstore / "esbuild@0.25.0" / "node_modules" / "esbuild", {"name": "esbuild",
                                                                  "scripts": {"postinstall": "node install.js"}})
    _pkg(vstore / "evil@1.0.0" / "node_modules" / "evil", {"name": "evil", "scripts": {"postinstall": "curl x"}})
    _pkg(vstore / "@tailwindcss+oxide@4.1.11" / "node_modules" / "@tailwindcss" / "oxide",
         {"name": "@tailwindcss/oxide", "scripts": {"install": "node a.js", "test": "x"}})
    (vstore / "esbuild-wasm@1.0.0" / "node_modules").mkdir(parents=True)
    _pkg(tmp_path, {"name": "app", "scripts": {"prepare": "p", "postinstall": "q", "preinstall": "r", "build": "b"}})
    plan = scripts.plan(tmp_path, ["esbuild", "@tailwindcss/oxide"])
    assert [(s.package, s.event, s.command) for s in plan.scripts] == [
        ("@tailwindcss/oxide", "install", "node a.js"), ("esbuild", "postinstall", "node install.js"),
        ("app", "preinstall", "r"), ("app", "postinstall", "q"), ("app", "prepare", "p")]
    assert [d.name for d in plan.dependency_dirs] == ["oxide", "esbuild"]
    argv = scripts.argv(plan)
    assert argv[:2] == ["sh", "-c"] and "curl x" not in argv


def _run_plan(plan: scripts.ScriptPlan, cwd: Path) -> tuple[int, list[str]]:
    import subprocess

    out = subprocess.run(scripts.argv(plan), cwd=cwd, capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "INIT_CWD": str(cwd)})
    return out.returncode, out.stdout.splitlines()


def test_the_script_step_runs_dependencies_concurrently_then_the_project_and_stops_at_a_failure(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    dep = [scripts.Script(a, "install", "a", "echo A1 > $INIT_CWD/a1", True),
           scripts.Script(a, "postinstall", "a", "test -f $INIT_CWD/a1 && echo a-second", True),
           scripts.Script(b, "postinstall", "@s/b", "echo from-b; echo $npm_lifecycle_event", True)]
    own = [scripts.Script(tmp_path, "postinstall", "app", "echo own-$npm_package_name", False),
           scripts.Script(tmp_path, "prepare", "app", "pwd", False)]
    rc, lines = _run_plan(scripts.ScriptPlan(scripts=dep + own), tmp_path)
    assert rc == 0, lines
    assert "[a] a-second" in lines and "[@s/b] from-b" in lines and "[@s/b] postinstall" in lines
    assert lines[-4:] == ["> app postinstall: echo own-$npm_package_name", "own-app", "> app prepare: pwd",
                          str(tmp_path)]
    failing = [scripts.Script(b, "postinstall", "bad", "exit 3", True), *own]
    rc, lines = _run_plan(scripts.ScriptPlan(scripts=failing), tmp_path)
    assert rc == 1 and "[bad] > bad postinstall failed (exit 3)" in lines and "dependency scripts failed: bad" in lines
    assert "own-app" not in lines  # the project's scripts never ran
    rc, lines = _run_plan(scripts.ScriptPlan(scripts=[scripts.Script(tmp_path, "prepare", "app", "exit 4", False),
                                                      scripts.Script(tmp_path, "postprepare", "app", "echo no",
                                                                     False)]), tmp_path)
    assert rc == 4 and "no" not in lines
    # No writable temp dir: the step fails rather than losing the record of a failed dependency script.
    import subprocess

    out = subprocess.run(scripts.argv(scripts.ScriptPlan(scripts=failing)), cwd=tmp_path, capture_output=True,
                         text=True, env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path / "missing")})
    assert out.returncode == 1 and "cannot create a temporary file" in out.stdout and "own-app" not in out.stdout


def test_shared_files_are_copied_before_a_dependency_script_may_write_them(tmp_path: Path) -> None:
    store = tmp_path / "store.js"
    store.write_text("original")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    os.link(store, pkg / "index.js")
    (pkg / "own.js").write_text("mine")
    assert scripts.unlink_shared(pkg) == 1
    assert os.stat(pkg / "index.js").st_nlink == 1 and (pkg / "index.js").read_text() == "original"
    (pkg / "index.js").write_text("changed")
    assert store.read_text() == "original"


def _files(pkg: dict[str, object]) -> dict[str, str]:
    return {"package.json": json.dumps(pkg)}


def test_package_json_policy(tmp_path: Path) -> None:
    blog = BuildLog(tmp_path / "log")
    out = packagejson.sanitize(_files({"name": "x", "packageManager": "pnpm@9.0.0", "devEngines": {},
                                                  "pnpm": {"onlyBuiltDependencies": ["evil"]},
                                                  "dependencies": {"a": "^1.2.3 || 2.x", "b": "npm:@s/b@^1",
                                                                   "c": "latest"}}), blog)
    assert set(json.loads(out["package.json"])) == {"name", "dependencies"}
    blog.close()
    assert "removed `packageManager`, `devEngines`, `pnpm`" in (tmp_path / "log").read_text()
    for spec in ("file:../../other/work", "link:/etc", "workspace:*", "git+https://x/y.git", "github:u/r",
                 "https://evil.example/x.tgz", "u/r", "portal:../x", "npm:x@file:../y"):
        with pytest.raises(pipeline.BuildFailed) as exc:
            packagejson.sanitize(_files({"devDependencies": {"d": spec}}), blog)
        assert exc.value.reason == "invalid_output" and "is not a registry version" in exc.value.message
    with pytest.raises(pipeline.BuildFailed):
        packagejson.sanitize(_files({"resolutions": {"d": "file:x"}}), blog)


def test_generator_env_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLOUDFLARE_API_TOKEN", "PREVIEWD_PG_DSN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD",
                 "PREVIEWD_S3_SECRET_ACCESS_KEY", "RANDOM_SECRET"):
        monkeypatch.setenv(name, "secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/c")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy")
    env = _proc.default_env()
    assert "secret" not in env.values()
    assert env["ANTHROPIC_API_KEY"] == "k" and env["CLAUDE_CONFIG_DIR"] == "/c" and env["HTTPS_PROXY"]
    assert env["PATH"] == os.environ["PATH"]


def test_data_dir_and_secret_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert hardening.secure_data_dir(data, data / "hmac_secret") == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    data.chmod(0o755)
    (data / "hmac_secret").write_text("s")
    (data / "hmac_secret").chmod(0o644)
    notes = hardening.secure_data_dir(data, data / "hmac_secret")
    assert len(notes) == 2 and "repaired to 0700" in notes[0] and "repaired to 0600" in notes[1]
    assert stat.S_IMODE((data / "hmac_secret").stat().st_mode) == 0o600
    (data / "hmac_secret").unlink()
    (data / "hmac_secret").symlink_to("/etc/passwd")
    with pytest.raises(hardening.HardeningError, match="symbolic link"):
        hardening.secure_data_dir(data, data / "hmac_secret")
    (data / "hmac_secret").unlink()
    (data / "hmac_secret").write_text("s")
    os.chown(data / "hmac_secret", 65534, 65534)
    with pytest.raises(hardening.HardeningError, match="belongs to uid 65534"):
        hardening.secure_data_dir(data, data / "hmac_secret")


def test_the_daemon_can_make_itself_non_dumpable() -> None:
    import subprocess
    import sys

    # In a child, so this test process stays as it was; PR_GET_DUMPABLE (3) before and after.
    code = ("import ctypes; from daemon.core import hardening; get = lambda: ctypes.CDLL(None).prctl(3, 0, 0, 0, 0); "
            "before = get(); ok = hardening.make_non_dumpable(); print(before, ok, get())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True", "0"], out
