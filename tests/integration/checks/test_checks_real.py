"""Checks with the real toolchain: the offline template's project (Vite, React, TypeScript `tsc -b`) plus eslint,
installed once by real pnpm and built in the real views. Proves the chain split builds the same output tree as
the script run as written, and what real tsc and eslint diagnostics become on the version."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core import versions
from daemon.core.config import load
from daemon.core.contract import Contract
from daemon.core.db import ProjectVersion
from daemon.generators import GenerationRequest, make_generator
from daemon.intake.submit import BuildRequest, submit_new, submit_rebuild
from daemon.project import toolchain
from daemon.runtime import Runtime
from daemon.steps.pipeline import Pipeline
from tests.support import TEST_SECRET
from tests.unit.pipeline.fakes import FakeGenerator, MemoryDeployer
from tests.unit.pipeline.test_pipeline import InlineQueue

pytestmark = pytest.mark.pnpm

ESLINT = "9.39.4"
# No `ignores` for dist/: the daemon keeps the build output out of the lint itself (`--ignore-pattern dist/`).
ESLINT_CONFIG = "export default [\n  { files: ['**/*.js'], rules: { 'no-unused-vars': 'warn' } },\n]\n"
TYPE_ERROR = "export const count: number = 'three'\n"


def _contract(extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The template generator's full contract, with eslint added (and `extra` files)."""
    contract = make_generator("template").generate(GenerationRequest(prompt="A bakery"), lambda _l: None).contract
    files = dict(contract.files)
    pkg = json.loads(files["package.json"])
    pkg["devDependencies"]["eslint"] = ESLINT
    files.update({"package.json": json.dumps(pkg, indent=2), "eslint.config.js": ESLINT_CONFIG,
                  "src/plain.js": "export const plain = 1\n", **(extra or {})})
    return Contract(files=files, meta=contract.meta).to_json()


class Real:
    def __init__(self, rt: Runtime, gen: FakeGenerator, dep: MemoryDeployer) -> None:
        self.rt, self.gen, self.dep = rt, gen, dep
        self.pipeline = Pipeline(rt)

    def build(self, contract: dict[str, Any], project: str = "site", rebuild: bool = False) -> ProjectVersion:
        self.gen.queue.append(contract)
        q = InlineQueue()
        submit = submit_rebuild if rebuild else submit_new
        v = submit(self.rt, q, BuildRequest("u1", project, "a bakery"))  # type: ignore[arg-type]
        self.pipeline.run(q.ids[0])
        self.pipeline.pending_checks.drain()  # checks recorded after going live
        return ProjectVersion.get_by_id(v.version_id)

    def log(self, v: ProjectVersion) -> str:
        return self.rt.layout.log_path(v.version_id).read_text()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    tmp = tmp_path_factory.mktemp("checks")
    path = tmp / "previewd.toml"
    # No warm bundler: this runtime is closed, not stopped like a daemon, and a paused bundler would outlive it.
    path.write_text(f'[paths]\ndata_dir = "{tmp / "data"}"\n[build]\naudit = "off"\nwarm_projects = 0\n'
                    '[render]\nenabled = false\n')
    cfg = load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
    gen, dep = FakeGenerator(), MemoryDeployer()
    rt = Runtime(cfg, generator=gen, deployer=dep)
    yield Real(rt, gen, dep)
    rt.close()


def _tree(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}


def test_split_chain_builds_the_same_tree_as_the_script_as_written(real: Real) -> None:
    real.rt.cfg.build.checks = "record"
    v1 = real.build(_contract())
    assert v1.status == "deployed", v1.failure_message
    log = real.log(v1)
    assert "split: `tsc -b` runs as the type check beside the bundle `vite build`" in log
    c = versions.version_json(v1)["checks"]
    assert c["typecheck"]["status"] == "pass" and c["lint"]["status"] == "pass", c
    split_tree = _tree(real.dep.sites[f"site-{v1.version_id.lower()}"])
    assert any(k.startswith("assets/") and k.endswith(".js") for k in split_tree)
    # the incremental state lies outside the output and survives: tsc -b's in node_modules/.tmp, eslint's cache
    work = real.rt.layout.project_dir("u1", "site") / "work"
    assert (work / "node_modules" / ".tmp" / "tsconfig.app.tsbuildinfo").is_file()
    assert (real.rt.layout.project_dir("u1", "site") / "cache" / "checks" / "eslintcache").is_file()

    real.rt.cfg.build.checks = "off"  # the same sources, the script as written (tsc -b && vite build in one step)
    v2 = real.build(_contract(), rebuild=True)
    assert v2.status == "deployed", v2.failure_message
    as_written = "$ " + " ".join(["pnpm", *toolchain.build_argv(toolchain.resolve())[1:]])
    assert "type check split off" not in real.log(v2) and as_written in real.log(v2)
    assert _tree(real.dep.sites[f"site-{v2.version_id.lower()}"]) == split_tree
    t = versions.version_json(v1)["timings"]
    assert set(t) >= {"generate", "install", "checks", "bundle", "deploy"}, t


def test_type_error_is_recorded_under_record_and_fails_under_fail(real: Real) -> None:
    real.rt.cfg.build.checks = "record"
    broken = _contract({"src/broken.ts": TYPE_ERROR})
    v = real.build(broken, rebuild=True)
    assert v.status == "deployed", v.failure_message
    tc = versions.version_json(v)["checks"]["typecheck"]
    assert tc["status"] == "fail" and tc["errors"] == 1, tc
    assert tc["diagnostics"][0]["location"] == "src/broken.ts:1:14" and tc["diagnostics"][0]["rule"] == "TS2322"

    real.rt.cfg.build.checks = "fail"
    live_before = versions.live_version("u1", "site")
    v = real.build(broken, rebuild=True)
    assert v.status == "failed" and v.failure_reason == "check_failed", v.failure_message
    assert "src/broken.ts:1:14" in (v.failure_message or "")
    assert versions.version_json(v)["checks"]["typecheck"]["diagnostics"][0]["file"] == "src/broken.ts"
    assert f"site-{v.version_id.lower()}" not in real.dep.sites and v.preview_url is None
    assert versions.live_version("u1", "site") == live_before


def test_a_lint_warning_fails_lint_under_max_warnings_zero(real: Real) -> None:
    real.rt.cfg.build.checks = "record"
    v = real.build(_contract({"src/unused.js": "const unused = 1\nexport const used = 2\n"}), rebuild=True)
    assert v.status == "deployed", v.failure_message
    lint = versions.version_json(v)["checks"]["lint"]
    assert lint["status"] == "fail" and lint["errors"] == 0 and lint["warnings"] == 1, lint
    d = lint["diagnostics"][0]
    assert (d["location"], d["rule"], d["severity"]) == ("src/unused.js:1:7", "no-unused-vars", "warning")
    assert not os.path.isabs(d["file"]) and Path(d["file"]).name == "unused.js"
