"""The command generator against real child processes: request on stdin, contract on stdout, failures typed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from daemon.core.contract import ContractError, ContractLimits
from daemon.generators import GenerationError, GenerationRequest, GenerationResult, make_generator
from tests.support import wait_until

CONTRACT = {
    "name": "cmd", "slug": "cmd", "description": "", "version": "0.1.0", "author": "", "repository": "",
    "license": "MIT", "tech_stack": [], "metadata": {},
    "templateFiles": [{"path": "package.json", "content": "{}"}],
    "files": [{"path": "index.html", "content": "<h1>cmd</h1>"}],
}

ECHO = """
import json, sys
req = json.load(sys.stdin)
open(sys.argv[1], "w").write(json.dumps(req))
print("working on it", file=sys.stderr)
print(json.dumps(json.loads(sys.argv[2])))
"""


def _run(argv: list[str], req: GenerationRequest, log: list[str], **kw: Any) -> GenerationResult:
    return make_generator("command", command=argv, **kw).generate(req, log.append)


def test_request_on_stdin_and_contract_on_stdout(script: Callable[[str], str], tmp_path: Path, log: list[str]) -> None:
    seen = tmp_path / "req.json"
    exe = script(ECHO)
    result = _run([exe, str(seen), json.dumps(CONTRACT)], GenerationRequest("a cat cafe", framework="react"), log)
    assert json.loads(seen.read_text()) == {"prompt": "a cat cafe", "framework": "react", "files": None}
    assert result.contract.files == {"package.json": "{}", "index.html": "<h1>cmd</h1>"}
    assert not result.contract.is_delta and result.raw is None
    assert any("working on it" in line for line in log)


def test_rebuild_sends_files_and_accepts_a_delta(script: Callable[[str], str], tmp_path: Path, log: list[str]) -> None:
    seen = tmp_path / "req.json"
    delta = {"files": [{"path": "index.html", "content": "v2"}], "deleted": ["old.css"]}
    req = GenerationRequest("make it v2", base_files={"index.html": "v1", "a/b.ts": "b"})
    result = _run([script(ECHO), str(seen), json.dumps(delta)], req, log)
    assert json.loads(seen.read_text())["files"] == [{"path": "a/b.ts", "content": "b"},
                                                     {"path": "index.html", "content": "v1"}]
    assert result.contract.is_delta and result.contract.deleted == ("old.css",)


def test_delta_for_a_new_project_is_invalid_output(script: Callable[[str], str], tmp_path: Path,
                                                   log: list[str]) -> None:
    delta = {"files": [{"path": "index.html", "content": "v2"}]}
    with pytest.raises(ContractError) as info:
        _run([script(ECHO), str(tmp_path / "r"), json.dumps(delta)], GenerationRequest("x"), log)
    assert info.value.code == "invalid_output"


@pytest.mark.parametrize(("stdout", "field"), [
    ("I could not do that, sorry.", None),
    (json.dumps({**CONTRACT, "files": [{"path": "/etc/passwd", "content": "x"}]}), "files[0].path"),
    (json.dumps({**CONTRACT, "files": [{"path": "x", "content": "", "type": "symlink"}]}), "files[0]"),
    ("", None),
])
def test_bad_stdout_is_invalid_output(script: Callable[[str], str], log: list[str], stdout: str,
                                      field: str | None) -> None:
    exe = script(f"import sys\nsys.stdin.read()\nsys.stdout.write({stdout!r})\n")
    with pytest.raises(ContractError) as info:
        _run([exe], GenerationRequest("x"), log)
    assert info.value.field == field


def test_non_utf8_stdout_is_invalid_output(script: Callable[[str], str], log: list[str]) -> None:
    exe = script("import sys\nsys.stdout.buffer.write(b'{\\xff\\xfe}')\n")
    with pytest.raises(ContractError, match="not UTF-8"):
        _run([exe], GenerationRequest("x"), log)


def test_non_zero_exit_carries_the_stderr_tail(script: Callable[[str], str], log: list[str]) -> None:
    exe = script(
        "import sys\nfor i in range(100): print(f'line {i}', file=sys.stderr)\n"
        "print('fatal: model quota exceeded', file=sys.stderr)\nsys.exit(3)\n"
    )
    with pytest.raises(GenerationError) as info:
        _run([exe], GenerationRequest("x"), log)
    err = info.value
    assert err.code == "generation_failed"
    assert "status 3" in err.message and "fatal: model quota exceeded" in err.message
    assert "line 99" in err.message and "line 10\n" not in err.message  # a tail, not the whole stream
    assert sum(line.startswith("[tool") for line in log) == 101  # every stderr line reached the build log


def test_timeout_kills_the_whole_process_tree(script: Callable[[str], str], tmp_path: Path,
                                              log: list[str]) -> None:
    pidfile = tmp_path / "child.pid"
    exe = script(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    with pytest.raises(GenerationError, match="timed out"):
        _run([exe], GenerationRequest("x"), log, timeout_s=2)
    child = int(pidfile.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, 10, interval=0.05, what="the grandchild ending after the timeout")


def test_stdout_flood_is_stopped(script: Callable[[str], str], log: list[str]) -> None:
    limits = ContractLimits(max_total_bytes=1000)
    exe = script("import sys\nwhile True: sys.stdout.write('x' * 65536)\n")
    with pytest.raises(GenerationError, match="more than"):
        _run([exe], GenerationRequest("x"), log, limits=limits)


def test_missing_executable(log: list[str], tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="cannot start"):
        _run([str(tmp_path / "nope")], GenerationRequest("x"), log)


def test_tool_that_ignores_stdin_still_works(script: Callable[[str], str], log: list[str]) -> None:
    exe = script(f"print({json.dumps(json.dumps(CONTRACT))})\n")
    big = {f"f{i}.ts": "x" * 100_000 for i in range(20)}  # 2 MB request the tool never reads
    assert _run([exe], GenerationRequest("x", base_files=big), log).contract.meta["name"] == "cmd"


def test_daemon_secrets_are_not_in_the_tool_environment(script: Callable[[str], str], tmp_path: Path,
                                                        log: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVIEWD_HMAC_SECRET", "s3cret")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "s3cret-cf")
    monkeypatch.setenv("PREVIEWD_PG_DSN", "postgresql://u:s3cret@db/x")
    monkeypatch.setenv("GEN_TEST_HIDDEN", "yes")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "claude-needs-this")
    envfile = tmp_path / "env.json"
    exe = script(f"import json, os\njson.dump(dict(os.environ), open({str(envfile)!r}, 'w'))\n"
                 f"print({json.dumps(json.dumps(CONTRACT))})\n")
    _run([exe], GenerationRequest("x"), log)
    env = json.loads(envfile.read_text())
    # an allow-list: what the Claude CLI needs, nothing of Cloudflare, Postgres, the daemon, or anything unknown
    assert not {"PREVIEWD_HMAC_SECRET", "CLOUDFLARE_API_TOKEN", "PREVIEWD_PG_DSN", "GEN_TEST_HIDDEN"} & set(env)
    assert env["ANTHROPIC_API_KEY"] == "claude-needs-this"
    _run([exe], GenerationRequest("x"), log, env={"ONLY": "this", "PATH": os.environ["PATH"]})
    env = json.loads(envfile.read_text())
    assert env["ONLY"] == "this" and "ANTHROPIC_API_KEY" not in env  # exactly the given env, nothing inherited
    assert not any("s3cret" in line for line in log)
