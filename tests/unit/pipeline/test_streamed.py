"""A first build streamed from the claude backend (tests/fakes/claude, stream-json) through the pipeline with the
fake pnpm: files written as they come, the install started on package.json and kept only when package.json held."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.core.config import load
from daemon.core.db import ProjectVersion
from daemon.generators import make_generator
from daemon.intake.submit import BuildRequest, submit_new
from daemon.runtime import Runtime
from daemon.steps.pipeline import Pipeline
from tests.fakes.tiny_generator import contract_json
from tests.support import TEST_SECRET
from tests.unit.pipeline.fakes import write_fake_pnpm
from tests.unit.pipeline.test_pipeline import InlineQueue

FAKE_CLAUDE = Path(__file__).resolve().parents[2] / "fakes" / "claude"
BUILD = "mkdir -p dist && cp index.html dist/ && cat src/a.txt >> dist/index.html"


class Streamed:
    """A runtime whose generator is the claude backend over the fake CLI; `env` sets the fake's behaviour."""

    def __init__(self, tmp_path: Path) -> None:
        pnpm = write_fake_pnpm(tmp_path)
        path = tmp_path / "previewd.toml"
        self.data = tmp_path / "data"
        path.write_text(f'[paths]\ndata_dir = "{self.data}"\npnpm = "{pnpm}"\n[build]\naudit = "off"\n'
                        '[render]\nenabled = false\n[sandbox]\nreadonly_root = false\nallow_unconfined = true\n')
        self.cfg = load(path, env={"PREVIEWD_HMAC_SECRET": TEST_SECRET})
        self.env = {**os.environ, "FAKE_CLAUDE_CHUNK": "60", "FAKE_CLAUDE_PAUSE_S": "0.3"}
        self.tmp = tmp_path
        gen = make_generator("claude", claude_executable=str(FAKE_CLAUDE), env=self.env)
        self.rt = Runtime(self.cfg, generator=gen)
        self.pipeline = Pipeline(self.rt)

    def build(self, answer: str, project: str = "p1") -> tuple[ProjectVersion, str]:
        (self.tmp / "answer.json").write_text(answer)
        self.env["FAKE_CLAUDE_RESULT"] = str(self.tmp / "answer.json")
        q = InlineQueue()
        v = submit_new(self.rt, q, BuildRequest("u1", project, "a page"))  # type: ignore[arg-type]
        self.pipeline.run(q.ids[0])
        v = ProjectVersion.get_by_id(v.version_id)
        return v, self.rt.layout.log_path(v.version_id).read_text()

    def work(self, project: str = "p1") -> Path:
        return self.data / "projects" / "u1" / project / "work"


@pytest.fixture
def streamed(tmp_path: Path) -> Iterator[Streamed]:
    s = Streamed(tmp_path)
    yield s
    s.rt.close()


def test_the_install_runs_while_the_generator_writes_and_is_kept(streamed: Streamed) -> None:
    # The fake holds its answer before the `files` list until the install's marker exists: only an install
    # started while it was generating lets it go on (else the build would wait out the fake's 30 s).
    streamed.env["FAKE_CLAUDE_HOLD_AT"] = '"files"'
    streamed.env["FAKE_CLAUDE_HOLD_UNTIL"] = str(streamed.work() / "node_modules" / ".previewd-install.json")
    answer = contract_json(BUILD, {"index.html": "<h1>streamed</h1>", "src/a.txt": "tail\n"})
    v, log = streamed.build(answer)
    assert v.status == "deployed", v.failure_message
    assert "install: started while the generator writes (package.json complete)" in log
    assert "install: done while the generator wrote" in log
    assert log.count("installed (fake)") == 1
    assert not v.install_skipped and (v.install_duration_ms or 0) > 0
    assert (streamed.work() / "pnpm-lock.yaml").is_file()
    site = streamed.rt.layout.previews / (v.preview_url or "").split("//")[1].split(".")[0]
    assert (site / "index.html").read_text() == "<h1>streamed</h1>tail\n"


def test_package_json_changed_after_the_install_started_means_a_second_install(streamed: Streamed) -> None:
    data = json.loads(contract_json(BUILD, {"index.html": "<h1>x</h1>", "src/a.txt": "a\n"}))
    pkg = json.loads(data["templateFiles"][0]["content"])
    pkg["scripts"]["build"] = BUILD + " && echo changed >> dist/index.html"
    data["files"].append({"path": "package.json", "content": json.dumps(pkg)})  # files override templateFiles
    v, log = streamed.build(json.dumps(data))
    assert v.status == "deployed", v.failure_message
    assert "install: started while the generator writes" in log
    assert "changed after the install started; installing again" in log
    assert log.count("installed (fake)") == 2
    site = streamed.rt.layout.previews / (v.preview_url or "").split("//")[1].split(".")[0]
    assert (site / "index.html").read_text() == "<h1>x</h1>a\nchanged\n"


@pytest.mark.parametrize("bad", ["../escape.txt", "/tmp/previewd-streamed-escape.txt", "node_modules/.bin/vite"])
def test_a_bad_streamed_path_fails_the_version_with_nothing_written_outside(streamed: Streamed, bad: str) -> None:
    data = json.loads(contract_json(BUILD, {"index.html": "<h1>x</h1>", "src/a.txt": "a\n"}))
    data["files"].append({"path": bad, "content": "escaped"})
    v, _log = streamed.build(json.dumps(data))
    assert v.status == "failed" and v.failure_reason == "invalid_output"
    assert "streamed file path" in (v.failure_message or "")
    assert not any(p.name == "escape.txt" for p in streamed.tmp.rglob("escape.txt"))
    assert not Path("/tmp/previewd-streamed-escape.txt").exists()
    assert not (streamed.work() / "node_modules" / ".bin" / "vite").exists()
    assert not [t for t in threading.enumerate() if t.name == "streamed-install"]  # the install was stopped
