"""Checks beside the bundle, against fakes: stand-ins for tsc and eslint (in node_modules/.bin, as pnpm puts them)
show what is recorded, how `[build] checks` judges it, the chain split, the no-network view and the limits."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.core import versions
from daemon.core.db import ProjectVersion, database
from daemon.intake.submit import BuildRequest, submit_new, submit_rebuild
from daemon.ops import metrics
from daemon.steps import checks
from tests.fakes.tiny_generator import contract_json
from tests.support import wait_until
from tests.unit.pipeline.conftest import Bench
from tests.unit.pipeline.fakes import page_project
from tests.unit.pipeline.test_pipeline import InlineQueue

TSCONFIG = json.dumps({"compilerOptions": {"noEmit": True, "strict": True}, "include": ["src"]})
COPY = "mkdir -p dist && cp index.html dist/"


def _script(body: str) -> str:
    return f"#!{sys.executable}\nimport json, os, socket, sys\n{body}\n"


TSC_TYPE_ERROR = _script(
    "print(\"src/App.tsx(3,7): error TS2322: Type 'string' is not assignable to type 'number'.\")\n"
    "print('  continued explanation')\nsys.exit(2)")
TSC_OK = _script("sys.exit(0)")
ESLINT_WARNING = _script(
    "out = sys.argv[sys.argv.index('--output-file') + 1]\n"
    "assert '--max-warnings=0' in sys.argv\n"
    "msg = {'ruleId': 'no-unused-vars', 'severity': 1, 'message': \"'x' is assigned a value but never used.\","
    " 'line': 2, 'column': 5}\n"
    "json.dump([{'filePath': os.path.join(os.getcwd(), 'src/a.js'), 'messages': [msg], 'errorCount': 0,"
    " 'warningCount': 1}], open(out, 'w'))\n"
    "print('ESLint found too many warnings (maximum: 0).')\nsys.exit(1)")
TSC_HOG = _script("blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 2**20))")
TSC_NET = _script(
    "port = int(open('port.txt').read())\n"
    "try:\n    socket.create_connection(('127.0.0.1', port), timeout=3).close(); word = 'reached'\n"
    "except OSError:\n    word = 'blocked'\n"
    "print(f'net.ts(1,1): error TS9999: {word}')\nsys.exit(2)")


def _project(build: str, files: dict[str, str], bins: dict[str, str]) -> dict[str, Any]:
    all_files = {"index.html": "<h1>Checked</h1>", **files, **{f"fake-bin/{n}": t for n, t in bins.items()}}
    return json.loads(contract_json(build, all_files))


def _build(b: Bench, contract: dict[str, Any], project: str = "p1", rebuild: bool = False) -> ProjectVersion:
    b.gen.queue.append(contract)
    q = InlineQueue()
    submit = submit_rebuild if rebuild else submit_new
    v = submit(b.rt, q, BuildRequest("u1", project, "a page"))  # type: ignore[arg-type]
    b.pipeline.run(q.ids[0])
    b.pipeline.pending_checks.drain()  # checks recorded after going live
    return ProjectVersion.get_by_id(v.version_id)


def _checks(v: ProjectVersion) -> dict[str, Any]:
    return versions.version_json(v)["checks"]


def _log(b: Bench, v: ProjectVersion) -> str:
    return b.rt.layout.log_path(v.version_id).read_text()


def test_no_tsconfig_or_eslint_config_is_skipped(bench: Bench) -> None:
    v = _build(bench, page_project("Plain"))
    assert v.status == "deployed", v.failure_message
    c = _checks(v)
    assert c["typecheck"]["status"] == "skipped" and c["typecheck"]["detail"] == "no tsconfig.json"
    assert c["lint"]["status"] == "skipped" and c["lint"]["detail"] == "no eslint config"
    assert "checks: none run, the build script runs as written (typecheck skipped: no tsconfig.json" in _log(bench, v)
    timings = versions.version_json(v)["timings"]
    assert set(timings) >= {"generate", "install", "bundle", "deploy"}


def test_type_error_under_record_deploys_with_the_diagnostics(bench: Bench) -> None:
    m = metrics.Metrics()
    m.install(bench.rt.events)
    v = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_TYPE_ERROR}))
    assert v.status == "deployed", v.failure_message
    assert list(bench.dep.sites.values()) == [{"index.html": b"<h1>Checked</h1>"}]
    tc = _checks(v)["typecheck"]
    assert tc["status"] == "fail" and tc["errors"] == 1
    d = tc["diagnostics"][0]
    assert d["location"] == "src/App.tsx:3:7" and d["rule"] == "TS2322"
    assert d["message"].startswith("Type 'string' is not assignable") and "continued explanation" in d["message"]
    log = _log(bench, v)
    assert "split: `tsc --noEmit` runs as the type check beside the bundle" in log
    assert "check typecheck: fail (1 errors" in log and "src/App.tsx:3:7" in log
    assert "checks" in versions.version_json(v)["timings"]
    assert m.check_failures.labels(kind="typecheck")._value.get() == 1


def test_type_error_under_fail_fails_the_version_and_keeps_no_preview(bench: Bench) -> None:
    bench.rt.cfg.build.checks = "fail"
    v = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_TYPE_ERROR}))
    assert v.status == "failed" and v.failure_reason == "check_failed"
    assert "src/App.tsx:3:7" in (v.failure_message or "")
    assert _checks(v)["typecheck"]["diagnostics"][0]["location"] == "src/App.tsx:3:7"
    assert bench.dep.sites == {} and v.preview_url is None
    assert versions.live_version("u1", "p1") is None


def test_passing_checks_under_fail_deploy(bench: Bench) -> None:
    bench.rt.cfg.build.checks = "fail"
    v = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_OK}))
    assert v.status == "deployed", v.failure_message
    assert _checks(v)["typecheck"]["status"] == "pass"


def test_lint_warning_fails_under_max_warnings_zero(bench: Bench) -> None:
    files = {"eslint.config.js": "export default [{ rules: { 'no-unused-vars': 'warn' } }]\n",
             "src/a.js": "export const a = 1\nconst x = 2\n"}
    v = _build(bench, _project(COPY, files, {"eslint": ESLINT_WARNING}))
    assert v.status == "deployed", v.failure_message
    lint = _checks(v)["lint"]
    assert lint["status"] == "fail" and (lint["errors"], lint["warnings"]) == (0, 1)
    assert lint["diagnostics"][0]["location"] == "src/a.js:2:5" and lint["diagnostics"][0]["rule"] == "no-unused-vars"
    assert _checks(v)["typecheck"]["status"] == "skipped"
    # the eslint cache is kept per project, outside the output
    assert "--cache-location <cache>/eslintcache" in lint["command"]
    assert "--ignore-pattern dist/" in lint["command"] and "src/" not in lint["command"]  # never the output
    bench.rt.cfg.build.checks = "fail"
    v2 = _build(bench, _project(COPY, files, {"eslint": ESLINT_WARNING}), project="p2")
    assert v2.failure_reason == "check_failed" and "lint fail (0 errors, 1 warnings)" in (v2.failure_message or "")


def test_a_check_over_the_memory_limit_fails_with_the_limits_reason(bench: Bench) -> None:
    bench.rt.cfg.limits.memory_mb = 160
    v = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_HOG}))
    assert v.status == "deployed", v.failure_message  # under record the bundle still went live
    tc = _checks(v)["typecheck"]
    assert tc["status"] == "error" and tc["reason"] == "memory_limit", tc
    bench.rt.cfg.build.checks = "fail"
    v2 = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_HOG}), "p2")
    assert v2.status == "failed" and v2.failure_reason == "memory_limit"
    assert bench.dep.sites.keys() == {f"p1-{v.version_id.lower()}"}


def test_checks_cannot_reach_the_network(bench: Bench) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
        files = {"tsconfig.json": TSCONFIG, "port.txt": str(port)}
        # the control: the same probe as the build script itself when the build may use the network
        bench.rt.cfg.sandbox.build_network = True
        probe = f"{sys.executable} fake-bin/tsc > probe.txt; {COPY}"
        v = _build(bench, _project(probe, files, {"tsc": TSC_NET}), "control")
        assert v.status == "deployed", v.failure_message
        ws = bench.rt.layout.project_dir("u1", "control") / "work"
        assert "reached" in (ws / "probe.txt").read_text()
        v = _build(bench, _project(COPY, files, {"tsc": TSC_NET}))
    tc = _checks(v)["typecheck"]
    assert [d["message"] for d in tc["diagnostics"]] == ["blocked"]


def test_checks_off_runs_the_script_as_written(bench: Bench) -> None:
    bench.rt.cfg.build.checks = "off"
    v = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_TYPE_ERROR}))
    assert v.status == "failed" and v.failure_reason == "build_failed"  # tsc in the script, as written
    assert _checks(v)["typecheck"]["status"] == "skipped"


def test_an_emitting_tsc_is_not_split(bench: Bench) -> None:
    emits = json.dumps({"compilerOptions": {"strict": True}, "include": ["src"]})
    v = _build(bench, _project(f"tsc -b && {COPY}", {"tsconfig.json": emits}, {"tsc": TSC_OK}))
    assert v.status == "deployed", v.failure_message
    assert "build script runs as written (its tsc may write files the bundle reads" in _log(bench, v)
    assert _checks(v)["typecheck"]["status"] == "pass"


def test_rebuild_keeps_the_check_state(bench: Bench) -> None:
    files = {"tsconfig.json": TSCONFIG}
    tsc = _script("state = sys.argv[sys.argv.index('--tsBuildInfoFile') + 1]\n"
                  "seen = os.path.exists(state)\nopen(state, 'w').write('x')\n"
                  "print(f'seen.ts(1,1): error TS1: {seen}')\nsys.exit(2)")
    v1 = _build(bench, _project(f"tsc --noEmit && {COPY}", files, {"tsc": tsc}))
    v2 = _build(bench, _project(f"tsc --noEmit && {COPY}", files, {"tsc": tsc}), rebuild=True)
    assert _checks(v1)["typecheck"]["diagnostics"][0]["message"] == "False"
    assert _checks(v2)["typecheck"]["diagnostics"][0]["message"] == "True"
    cache = bench.rt.layout.project_dir("u1", "p1") / "cache" / "checks"
    assert (cache / "tsconfig.tsbuildinfo").exists()


# -- the pure parts ----------------------------------------------------------------------------------------

def test_parse_tsc_counts_and_caps() -> None:
    lines = [f"src/f{i}.ts({i},2): error TS2304: Cannot find name 'x{i}'." for i in range(1, 31)]
    lines += ["error TS5083: Cannot read file '/w/tsconfig.base.json'.", "noise"]
    errors, warnings, diags = checks.parse_tsc(lines)
    assert (errors, warnings, len(diags)) == (31, 0, 20)
    assert diags[0]["location"] == "src/f1.ts:1:2"


def test_parse_eslint_relative_paths(tmp_path: Path) -> None:
    data = [{"filePath": str(tmp_path / "src" / "x.js"),
             "messages": [{"ruleId": "semi", "severity": 2, "message": "Missing semicolon.", "line": 4, "column": 9}]}]
    assert checks.parse_eslint(json.dumps(data), tmp_path) == (1, 0, [{
        "location": "src/x.js:4:9", "file": "src/x.js", "line": 4, "column": 9, "message": "Missing semicolon.",
        "rule": "semi", "severity": "error"}])
    assert checks.parse_eslint("Oops, eslint crashed", tmp_path) is None


@pytest.mark.parametrize(("script", "split"), [
    ("tsc -b && vite build", True),
    ("tsc && vite build", True),
    ("tsc --noEmit && vite build --mode production", True),
    ("vite build", False),
    ("tsc -p other.json && vite build", False),
    ("vue-tsc -b && vite build", False),
    ("tsc -b", False),
])
def test_split_chain(tmp_path: Path, script: str, split: bool) -> None:
    (tmp_path / "tsconfig.json").write_text('{\n  // the Vite template\'s root config\n  "files": [],\n'
                                            '  "references": [{"path": "./tsconfig.app.json"}],\n}')
    (tmp_path / "tsconfig.app.json").write_text('{"compilerOptions": {"noEmit": true, /* x */ "strict": true}}')
    out = checks.split_chain(tmp_path, script, {"build": script})
    assert isinstance(out, tuple) == split, out
    assert not isinstance(checks.split_chain(tmp_path, script, {"build": script, "prebuild": "x"}), tuple)


def test_checks_show_in_history_the_replica_record_and_daemonctl(bench: Bench) -> None:
    from daemon.cli.versionlist import table
    from sync.replica.base import validate_record

    v = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_TYPE_ERROR}))
    [item] = versions.history_json("u1", "p1")
    assert item["checks"]["typecheck"]["status"] == "fail" and item["timings"]["bundle"] >= 0
    rec = validate_record(versions.to_record(v))
    assert rec["checks"]["typecheck"]["diagnostics"][0]["location"] == "src/App.tsx:3:7"
    assert isinstance(rec["timings"], dict)
    row = versions.row_from_record(rec)
    assert json.loads(row["checks"]) == rec["checks"]
    assert "tsc:fail lint:skip" in table("u1", "p1", {"versions": [item]})


def test_under_record_the_worker_does_not_wait_for_the_checks_but_the_projects_next_build_does(
        bench: Bench) -> None:
    # the type check of the first version holds until the test opens the gate (at most 30 s)
    tsc = _script("import time\nif os.path.exists('hold'):\n    t = time.time()\n"
                  "    while not os.path.exists('gate') and time.time() - t < 30:\n        time.sleep(0.05)\n"
                  "sys.exit(0)")
    build = f"tsc --noEmit && {COPY}"
    bench.gen.queue.append(_project(build, {"tsconfig.json": TSCONFIG, "hold": "1"}, {"tsc": tsc}))
    q = InlineQueue()
    v1 = submit_new(bench.rt, q, BuildRequest("u1", "p1", "a page"))  # type: ignore[arg-type]
    bench.pipeline.run(q.ids[0])
    v1 = ProjectVersion.get_by_id(v1.version_id)
    assert v1.status == "deployed" and v1.checks is None  # live, its checks still running

    def open_gate_when_the_rebuild_waits() -> None:
        for _ in range(600):
            logs = bench.rt.data_dir / "logs"
            if any("waiting for the previous version's checks" in p.read_text() for p in logs.glob("*.log")):
                break
            time.sleep(0.05)
        (bench.rt.layout.project_dir("u1", "p1") / "work" / "gate").write_text("open")

    opener = threading.Thread(target=open_gate_when_the_rebuild_waits)
    opener.start()
    v2 = _build(bench, _project(build, {"tsconfig.json": TSCONFIG}, {"tsc": tsc}), rebuild=True)
    opener.join()
    log2 = _log(bench, v2)
    assert log2.index("waiting for the previous version's checks") < log2.index("the previous version's checks "
                                                                                 "ended") < log2.index("$ ")
    assert _checks(ProjectVersion.get_by_id(v1.version_id))["typecheck"]["status"] == "pass"
    assert "check typecheck: pass" in _log(bench, v1)  # appended to its log after the fact


def test_references_outside_the_workspace_count_as_emitting(tmp_path: Path) -> None:
    for ref in ("../elsewhere", "/etc"):
        (tmp_path / "tsconfig.json").write_text(json.dumps({"files": [], "references": [{"path": ref}]}))
        assert not isinstance(checks.split_chain(tmp_path, "tsc -b && vite build", {}), tuple)


def test_late_recording_leaves_no_database_connection_open(bench: Bench) -> None:
    ours = str((bench.rt.data_dir / "state.db").resolve())

    def open_dbs() -> int:
        # This bench's database only: other tests' daemons in this process may still be closing theirs. The
        # builds ran on this thread: its own connection is open or not depending on the path the build took
        # (checks done before or after the bundle), so it is closed first; what is left belongs to other threads.
        if not database.is_closed():
            database.close()
        n = 0
        for fd in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                n += str(fd.readlink()) == ours
        return n

    def after_live_settled() -> None:
        # The after-live pool runs one job at a time, in order: once a no-op submitted now has run, every build's
        # after-live work before it has ended (on a loaded machine that can take longer than any fixed wait).
        bench.rt.after_pool.submit(lambda: None).result(timeout=300)

    contract = _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_OK})
    _build(bench, contract)
    after_live_settled()
    before = open_dbs()
    for _ in range(3):
        _build(bench, contract, rebuild=True)
    after_live_settled()
    # A thread that has just finished may still be closing its connection: a leak is a connection that never
    # closes, so wait for them to settle rather than sample once.
    wait_until(lambda: open_dbs() <= before, 20, interval=0.1, what="the late threads' connections closing")


def test_a_fast_rollback_carries_its_targets_checks(bench: Bench) -> None:
    from daemon.intake.rollback import rollback

    v1 = _build(bench, _project(f"tsc --noEmit && {COPY}", {"tsconfig.json": TSCONFIG}, {"tsc": TSC_TYPE_ERROR}))
    _build(bench, page_project("Second"), rebuild=True)
    r = rollback(bench.rt, InlineQueue(), "u1", "p1", v1.version_id)  # type: ignore[arg-type]
    assert r.status == "deployed"
    assert _checks(r) == _checks(v1) and _checks(r)["typecheck"]["status"] == "fail"
    assert "deploy" in versions.version_json(r)["timings"]


def test_references_that_would_emit_are_not_checked_with_tsc_b(tmp_path: Path) -> None:
    (tmp_path / "tsconfig.json").write_text(json.dumps({"files": [], "references": [{"path": "./app"}]}))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "tsconfig.json").write_text(json.dumps({"compilerOptions": {"outDir": "out"}}))
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"build": "vite build"}}))
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "tsc").write_text("#!/bin/sh\n")
    p = checks.plan(tmp_path, "record")
    assert p.typecheck is None and "would write files" in p.skipped["typecheck"]
    (tmp_path / "app" / "tsconfig.json").write_text(json.dumps({"compilerOptions": {"noEmit": True}}))
    assert checks.plan(tmp_path, "record").typecheck == [str(bin_dir / "tsc"), "-b", "--pretty", "false"]
