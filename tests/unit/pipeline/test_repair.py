"""The repair loop against a fake Claude CLI with a scripted model: tiny projects whose build runs a stand-in for tsc
(type errors and missing imports, reported as tsc reports them), so each build takes a fraction of a second.

(a) fixed on the first attempt, (b) on the second, (c) never fixed: stops at the cap, the budget charged exactly,
(d) worse: the no-progress stop, (e) a hostile path in a repair is refused like any contract; plus the budget stop,
the opt-out, `suggest` and what the prompt carries."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core import quotas, versions
from daemon.core.config import load
from daemon.core.db import BuildUsage, ProjectVersion
from daemon.generators import ClaudeGenerator
from daemon.intake import repair
from daemon.intake.submit import BuildRequest, submit_new
from daemon.runtime import Runtime
from daemon.steps.pipeline import Pipeline
from tests.fakes.tiny_generator import REPO, contract_json
from tests.support import TEST_SECRET
from tests.unit.pipeline.fakes import MemoryDeployer, write_fake_pnpm

FAKE_CLAUDE = REPO / "tests" / "fakes" / "claude"
TOKENS = (100, 50)

# A stand-in for `tsc --noEmit --pretty false`: a string assigned to a number and an import of a file that does not
# exist are errors, reported in tsc's own format.
FAKE_TSC = f"""#!{sys.executable}
import os, re, sys
errors = []
for root, _dirs, names in os.walk("src"):
    for name in sorted(names):
        path = os.path.join(root, name)
        for i, line in enumerate(open(path).read().splitlines(), 1):
            m = re.search(r"const \\w+: number = (['\\"])", line)
            if m:
                errors.append(f"{{path}}({{i}},{{m.start() + 7}}): error TS2322: Type 'string' is not assignable to "
                              "type 'number'.")
            m = re.search(r"from '(\\./[^']+)'", line)
            if m and not os.path.exists(os.path.join(root, m.group(1)[2:] + ".ts")):
                errors.append(f"{{path}}({{i}},{{m.start(1)}}): error TS2307: Cannot find module '{{m.group(1)}}' "
                              "or its corresponding type declarations.")
for e in errors:
    print(e)
sys.exit(2 if errors else 0)
"""
BUILD = "tsc && mkdir -p dist && cp index.html dist/"
GOOD_MAIN = "export const count: number = 1\n"
TYPE_ERROR = "// the counter\nexport const count: number = \"one\"\n"
MISSING_IMPORT = "import { helper } from './helpers'\nexport const count: number = helper()\n"
BOTH = "import { helper } from './helpers'\nexport const count: number = \"one\"\n"


def project(main: str) -> dict[str, Any]:
    """A tiny project whose build type-checks src/ with the stand-in tsc (installed by the fake pnpm)."""
    files = {"index.html": "<h1>Counter</h1>", "src/main.ts": main, "fake-bin/tsc": FAKE_TSC}
    return json.loads(contract_json(BUILD, files))


def delta(files: dict[str, str], deleted: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"delta": True, "files": [{"path": p, "content": c} for p, c in files.items()], "deleted": list(deleted)}


class Loop:
    """A runtime whose generator is the fake Claude CLI answering from a script, and the loop's queue run inline."""

    def __init__(self, rt: Runtime, script: Path) -> None:
        self.rt, self.script = rt, script
        self.pipeline = Pipeline(rt)
        self.pipeline.on_outcome = lambda vid: repair.on_outcome(rt, vid)
        self.queued: list[str] = []
        self.pipeline.enqueue = self.queued.append

    def answers(self, *results: dict[str, Any]) -> None:
        self.script.write_text(json.dumps(list(results)))

    def prompts(self) -> list[str]:
        path = Path(f"{self.script}.prompts")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def build(self, first: dict[str, Any], *repairs: dict[str, Any], project: str = "p1",
              opt_out: bool = False) -> ProjectVersion:
        """A new project answered with `first`, repairs answered with `repairs`; runs every queued build."""
        self.answers(first, *repairs)
        v = submit_new(self.rt, self, BuildRequest("u1", project, "a counter", repair=not opt_out))  # type: ignore
        while self.queued:
            self.pipeline.run(self.queued.pop(0))
        return ProjectVersion.get_by_id(v.version_id)

    def enqueue(self, version_id: str) -> None:  # the BuildQueue seam submit_new uses
        self.queued.append(version_id)

    def attempts(self, root: ProjectVersion) -> list[ProjectVersion]:
        return list(ProjectVersion.select().where(ProjectVersion.repair_of == root.version_id)
                    .order_by(ProjectVersion.repair_attempt))


def _runtime(tmp_path: Path, extra: str = "") -> tuple[Runtime, Path]:
    pnpm = write_fake_pnpm(tmp_path)
    path = tmp_path / "previewd.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\npnpm = "{pnpm}"\n[build]\naudit = "off"\n'
                    '[render]\nenabled = false\n[sandbox]\nreadonly_root = false\nallow_unconfined = true\n'
                    f'[repair]\nmode = "auto"\nmax_attempts = 2\n{extra}')
    cfg = load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
    script = tmp_path / "script.json"
    env = {"PATH": "/usr/bin:/bin", "FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_TOKENS": f"{TOKENS[0]},{TOKENS[1]}"}
    gen = ClaudeGenerator(executable=str(FAKE_CLAUDE), env=env)
    return Runtime(cfg, generator=gen, deployer=MemoryDeployer()), script


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    rt, script = _runtime(tmp_path, '[quotas]\ndefault_plan = "free"\n[plans.free]\nrepair_attempts = 3\n')
    yield Loop(rt, script)
    rt.close()


def _state(v: ProjectVersion) -> dict[str, Any]:
    return versions.version_json(ProjectVersion.get_by_id(v.version_id))["repair"]


def test_a_type_error_fixed_on_the_first_attempt(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"src/main.ts": GOOD_MAIN}))
    assert root.status == "failed" and root.failure_reason == "build_failed"
    state = _state(root)
    assert state["outcome"] == "repaired" and state["stopReason"] == "passed" and state["attempts"] == 1
    [attempt] = loop.attempts(root)
    assert attempt.status == "deployed" and attempt.kind == "repair" and attempt.repair_attempt == 1
    assert attempt.parent_version_id == root.version_id and state["repairedVersionId"] == attempt.version_id
    assert versions.live_version("u1", "p1").version_id == attempt.version_id
    # the request: the failed version's diagnostics, its source line, the instruction; one call sent it
    req = json.loads(root.repair_request)
    [err] = req["errors"]
    assert err["location"] == "src/main.ts:2:14" and "TS2322" in err["message"]
    assert any("export const count: number = \"one\"" in line for line in err["source"])
    [_first, prompt] = loop.prompts()
    assert "REPAIR" in prompt and "src/main.ts:2:14" in prompt and "smallest change" in prompt
    assert str(loop.rt.data_dir) not in prompt and TEST_SECRET not in prompt
    # metered: one repair attempt, the tokens the CLI reported
    assert quotas.repair_usage("u1", quotas.current_month()) == (1, sum(TOKENS))


def test_b_fixed_on_the_second_attempt(loop: Loop) -> None:
    # the first attempt fixes one of two errors (progress), the second the other
    root = loop.build(project(BOTH), delta({"src/main.ts": MISSING_IMPORT}),
                      delta({"src/helpers.ts": "export function helper(): number { return 2 }\n"}))
    state = _state(root)
    assert state["outcome"] == "repaired" and state["attempts"] == 2
    first, second = loop.attempts(root)
    assert first.status == "failed" and second.status == "deployed"
    assert second.parent_version_id == first.version_id and second.repair_of == root.version_id
    assert "Cannot find module './helpers'" in json.loads(first.repair_request)["errors"][0]["message"]


def test_c_never_fixed_stops_at_the_cap_and_charges_exactly(loop: Loop) -> None:
    # each answer moves the error one line down: new diagnostics, never fewer errors, never a pass
    moved = ["// a\n" + TYPE_ERROR, "// a\n// b\n" + TYPE_ERROR, "// a\n// b\n// c\n" + TYPE_ERROR]
    root = loop.build(project(TYPE_ERROR), *[delta({"src/main.ts": m}) for m in moved])
    state = _state(root)
    assert (state["outcome"], state["stopReason"], state["attempts"]) == ("failed", "max_attempts", 2)
    assert [a.status for a in loop.attempts(root)] == ["failed", "failed"]
    assert len(loop.prompts()) == 3  # the first build and two attempts, no more
    assert quotas.repair_usage("u1", quotas.current_month()) == (2, 2 * sum(TOKENS))
    assert BuildUsage.select().where(BuildUsage.kind == "repair", BuildUsage.finished == True).count() == 2  # noqa: E712
    assert versions.live_version("u1", "p1") is None  # the pointer never moved to a failure


def test_d_worse_is_no_progress(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"src/main.ts": BOTH}))
    state = _state(root)
    assert (state["outcome"], state["stopReason"], state["attempts"]) == ("failed", "no_progress", 1)
    assert "more errors" in state["detail"]


def test_the_same_diagnostics_is_no_progress(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"README.md": "unrelated\n"}))
    state = _state(root)
    assert (state["stopReason"], state["attempts"]) == ("no_progress", 1)


def test_e_a_hostile_path_in_a_repair_is_refused(loop: Loop, tmp_path: Path) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"../../escape.ts": GOOD_MAIN}))
    [attempt] = loop.attempts(root)
    assert attempt.status == "failed" and attempt.failure_reason == "invalid_output"
    state = _state(root)
    assert (state["outcome"], state["stopReason"]) == ("failed", "invalid_output")
    assert not list(tmp_path.rglob("escape.ts"))
    assert quotas.repair_usage("u1", quotas.current_month()) == (1, sum(TOKENS))  # the refused answer is paid for


def test_the_budget_stops_the_loop(tmp_path: Path) -> None:
    rt, script = _runtime(tmp_path, '[quotas]\ndefault_plan = "tight"\n[plans.tight]\nrepair_attempts = 1\n')
    try:
        lp = Loop(rt, script)
        moved = delta({"src/main.ts": "// a\n" + TYPE_ERROR})
        root = lp.build(project(TYPE_ERROR), moved, delta({"src/main.ts": GOOD_MAIN}))
        state = _state(root)
        assert (state["outcome"], state["stopReason"], state["attempts"]) == ("failed", "budget", 1)
        assert "repair attempts this month: 1 of 1" in state["detail"]
        assert quotas.repair_usage("u1", quotas.current_month()) == (1, sum(TOKENS))
    finally:
        rt.close()


def test_a_request_may_opt_out(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"src/main.ts": GOOD_MAIN}), opt_out=True)
    assert root.status == "failed" and not loop.attempts(root) and root.repair_request is None
    assert len(loop.prompts()) == 1


def test_suggest_carries_the_request_and_one_attempt_runs_on_demand(tmp_path: Path) -> None:
    rt, script = _runtime(tmp_path, "")
    rt.cfg.repair.mode = "suggest"
    try:
        lp = Loop(rt, script)
        root = lp.build(project(TYPE_ERROR), delta({"src/main.ts": GOOD_MAIN}))
        assert _state(root)["status"] == "suggested" and not lp.attempts(root)
        assert json.loads(root.repair_request)["errors"][0]["location"] == "src/main.ts:2:14"
        attempt = repair.repair_now(rt, lp, root.version_id, "u1", "p1")  # type: ignore[arg-type]
        while lp.queued:
            lp.pipeline.run(lp.queued.pop(0))
        attempt = ProjectVersion.get_by_id(attempt.version_id)
        assert attempt.status == "deployed" and attempt.repair_of == root.version_id and attempt.repair_attempt == 1
        with pytest.raises(Exception, match="no repair request"):
            repair.repair_now(rt, lp, attempt.version_id, "u1", "p1")  # type: ignore[arg-type]
    finally:
        rt.close()
