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
from daemon.core.errors import Conflict
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
    """One runtime for the module whose generator is the fake Claude CLI answering from a script (one per test),
    and the loop's queue run inline; each test builds as a user of its own (budgets and caps are per user)."""

    def __init__(self, rt: Runtime, gen: ClaudeGenerator, tmp: Path) -> None:
        self.rt, self.gen, self.tmp = rt, gen, tmp
        self.pipeline = Pipeline(rt)
        self.pipeline.on_outcome = lambda vid: repair.on_outcome(rt, vid)
        self.queued: list[str] = []
        self.pipeline.enqueue = self.queued.append
        self.user = "u0"
        self.script = tmp / "script.json"

    def start(self, user: str) -> None:
        self.user, self.script = user, self.tmp / f"{user}.json"
        self.gen.env = {"PATH": "/usr/bin:/bin", "FAKE_CLAUDE_SCRIPT": str(self.script),
                        "FAKE_CLAUDE_TOKENS": f"{TOKENS[0]},{TOKENS[1]}"}

    def answers(self, *results: dict[str, Any]) -> None:
        self.script.write_text(json.dumps(list(results)))

    def prompts(self) -> list[str]:
        path = Path(f"{self.script}.prompts")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def build(self, first: dict[str, Any], *repairs: dict[str, Any], opt_out: bool = False) -> ProjectVersion:
        """A new project answered with `first`, repairs answered with `repairs`; runs every queued build."""
        self.answers(first, *repairs)
        v = submit_new(self.rt, self, BuildRequest(self.user, "p1", "a counter", repair=not opt_out))  # type: ignore
        self.run_queued()
        return ProjectVersion.get_by_id(v.version_id)

    def run_queued(self) -> None:
        while self.queued:
            self.pipeline.run(self.queued.pop(0))

    def enqueue(self, version_id: str) -> None:  # the BuildQueue seam submit_new uses
        self.queued.append(version_id)

    def used(self) -> tuple[int, int]:
        return quotas.repair_usage(self.user, quotas.current_month())

    @staticmethod
    def attempts(root: ProjectVersion) -> list[ProjectVersion]:
        return list(ProjectVersion.select().where(ProjectVersion.repair_of == root.version_id)
                    .order_by(ProjectVersion.repair_attempt))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    tmp = tmp_path_factory.mktemp("repair")
    pnpm = write_fake_pnpm(tmp)
    path = tmp / "previewd.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp / "data"}"\npnpm = "{pnpm}"\n[build]\naudit = "off"\n'
                    '[render]\nenabled = false\n[sandbox]\nreadonly_root = false\nallow_unconfined = true\n'
                    '[repair]\nmode = "auto"\nmax_attempts = 2\n[quotas]\ndefault_plan = "free"\n'
                    '[plans.free]\nrepair_attempts = 3\n[plans.tight]\nrepair_attempts = 1\n'
                    # not streamed: the fake pnpm installs the project's fake-bin/ stand-ins, which a streamed
                    # install (started at package.json) would not have yet
                    '[generator]\nstream = false\n')
    cfg = load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
    gen = ClaudeGenerator(executable=str(FAKE_CLAUDE), env={})
    rt = Runtime(cfg, generator=gen, deployer=MemoryDeployer())
    yield Loop(rt, gen, tmp)
    rt.close()


@pytest.fixture
def loop(shared: Loop, request: pytest.FixtureRequest) -> Iterator[Loop]:
    shared.start(f"u{abs(hash(request.node.name)) % 10**8}")
    yield shared
    shared.rt.cfg.repair.mode = "auto"


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
    assert versions.live_version(loop.user, "p1").version_id == attempt.version_id
    # the request: the failed version's diagnostics, its source line, the instruction; one call sent it
    req = json.loads(root.repair_request)
    [err] = req["errors"]
    assert err["location"] == "src/main.ts:2:14" and "TS2322" in err["message"]
    assert any("export const count: number = \"one\"" in line for line in err["source"])
    [_first, prompt] = loop.prompts()
    assert "REPAIR" in prompt and "src/main.ts:2:14" in prompt and "smallest change" in prompt
    assert str(loop.rt.data_dir) not in prompt and TEST_SECRET not in prompt
    # metered: one repair attempt, the tokens the CLI reported; the webhook's post says how the loop ended
    assert loop.used() == (1, sum(TOKENS))
    hook = repair.webhook_body(ProjectVersion.get_by_id(root.version_id))
    assert hook["alert"] == "repair_ended" and hook["repair"]["stopReason"] == "passed"


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
    assert loop.used() == (2, 2 * sum(TOKENS))
    assert BuildUsage.select().where(BuildUsage.user_id == loop.user, BuildUsage.kind == "repair",
                                     BuildUsage.finished == True).count() == 2  # noqa: E712
    assert versions.live_version(loop.user, "p1") is None  # the pointer never moved to a failure


def test_d_worse_is_no_progress(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"src/main.ts": BOTH}))
    state = _state(root)
    assert (state["outcome"], state["stopReason"], state["attempts"]) == ("failed", "no_progress", 1)
    assert "more errors" in state["detail"]


def test_the_same_diagnostics_is_no_progress(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"README.md": "unrelated\n"}))
    state = _state(root)
    assert (state["stopReason"], state["attempts"]) == ("no_progress", 1)


def test_e_a_hostile_path_in_a_repair_is_refused(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"../../escape.ts": GOOD_MAIN}))
    [attempt] = loop.attempts(root)
    assert attempt.status == "failed" and attempt.failure_reason == "invalid_output"
    state = _state(root)
    assert (state["outcome"], state["stopReason"]) == ("failed", "invalid_output")
    assert not list(loop.tmp.rglob("escape.ts"))
    assert loop.used() == (1, sum(TOKENS))  # the refused answer is paid for


def test_the_budget_stops_the_loop(loop: Loop) -> None:
    quotas.assign(loop.rt.cfg, None, "user", loop.user, "tight")
    moved = delta({"src/main.ts": "// a\n" + TYPE_ERROR})
    root = loop.build(project(TYPE_ERROR), moved, delta({"src/main.ts": GOOD_MAIN}))
    state = _state(root)
    assert (state["outcome"], state["stopReason"], state["attempts"]) == ("failed", "budget", 1)
    assert "repair attempts this month: 1 of 1 on plan tight" in state["detail"]
    assert loop.used() == (1, sum(TOKENS))


def test_a_request_may_opt_out(loop: Loop) -> None:
    root = loop.build(project(TYPE_ERROR), delta({"src/main.ts": GOOD_MAIN}), opt_out=True)
    assert root.status == "failed" and not loop.attempts(root) and root.repair_request is None
    assert len(loop.prompts()) == 1


def test_suggest_carries_the_request_and_one_attempt_runs_on_demand(loop: Loop) -> None:
    loop.rt.cfg.repair.mode = "suggest"
    root = loop.build(project(TYPE_ERROR), delta({"src/main.ts": GOOD_MAIN}))
    assert _state(root)["status"] == "suggested" and not loop.attempts(root)
    assert json.loads(root.repair_request)["errors"][0]["location"] == "src/main.ts:2:14"
    attempt = repair.repair_now(loop.rt, loop, root.version_id, loop.user, "p1")  # type: ignore[arg-type]
    loop.run_queued()
    attempt = ProjectVersion.get_by_id(attempt.version_id)
    assert attempt.status == "deployed" and attempt.repair_of == root.version_id and attempt.repair_attempt == 1
    with pytest.raises(Conflict, match="no repair request"):
        repair.repair_now(loop.rt, loop, attempt.version_id, loop.user, "p1")  # type: ignore[arg-type]


def test_the_request_takes_check_diagnostics_and_a_clean_log_tail(loop: Loop) -> None:
    # a check_failed version (no build needed): its check's diagnostics are the errors; the log's tool lines come
    # without ANSI, the daemon's own lines are left out and a droplet path is shown relative to the project
    rt = loop.rt
    v = versions.create(None, user_id=loop.user, project_id="checked", prompt="p", kind="new")
    work = rt.layout.workspace(loop.user, "checked")
    rt.layout.log_path(v.version_id).write_text(
        "".join(f"line {i}\n" for i in range(60)) + "[previewd 2026-12-07 15:00:00.000Z] $ pnpm install --store-dir "
        f"{rt.data_dir}/pnpm-store\n\x1b[31m{work}/src/a.ts\x1b[0m: something odd\n")
    diag = [{"location": f"src/a.ts:{n}:1", "file": "src/a.ts", "line": n, "column": 1, "message": f"bad {n}",
             "severity": "error"} for n in range(1, 9)]
    checks = {"typecheck": {"status": "fail", "errors": 8, "diagnostics": diag}, "lint": {"status": "pass"}}
    v = versions.update(None, v.version_id, status="failed", failure_reason="check_failed",
                        failure_message='[build] checks = "fail": typecheck', checks=checks)
    req = repair.build_request(rt, v)
    assert [e["location"] for e in req["errors"]] == [f"src/a.ts:{n}:1" for n in range(1, 6)]  # max_errors
    assert len(req["logTail"]) == 30 and req["logTail"][-2:] == ["line 59", "src/a.ts: something odd"]  # log_lines
    assert not any("[previewd" in x or "\x1b" in x or str(rt.data_dir) in x for x in req["logTail"])
    assert repair.fingerprint(req) == req["fingerprint"]
