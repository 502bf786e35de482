"""The claude generator against tests/fakes/claude: the verdict comes from stdout JSON, never the exit code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from daemon.core.contract import ContractError
from daemon.generators import GenerationError, GenerationRequest, GenerationResult, StreamingGenerator, make_generator
from daemon.generators.claude import SYSTEM_PROMPT


def _run(fake: str, mode: str, req: GenerationRequest, log: list[str], tmp_path: Path, *,
         result_text: str | None = None, **kw: Any) -> GenerationResult:
    env = {**os.environ, "FAKE_CLAUDE_MODE": mode, "FAKE_CLAUDE_RECORD": str(tmp_path / "call.json")}
    if result_text is not None:
        (tmp_path / "result.txt").write_text(result_text)
        env["FAKE_CLAUDE_RESULT"] = str(tmp_path / "result.txt")
    gen = make_generator("claude", claude_executable=fake, env=env, **kw)
    return gen.generate(req, log.append)


def _call(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "call.json").read_text())


def test_success_gives_contract_and_raw_json(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    result = _run(fake_claude, "success", GenerationRequest("a fake app", framework="react"), log, tmp_path,
                  model="claude-sonnet-4-5")
    assert result.contract.meta["name"] == "fake-app" and not result.contract.is_delta
    assert "src/main.js" in result.contract.files
    assert result.raw is not None
    assert result.raw["type"] == "result" and result.raw["session_id"] and result.raw["total_cost_usd"] == 0.0123
    argv = _call(tmp_path)["argv"]
    assert argv[:3] == ["-p", "--output-format", "json"]
    assert "--verbose" not in argv
    assert argv[argv.index("--system-prompt") + 1] == SYSTEM_PROMPT
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert "Bash" in argv[argv.index("--disallowedTools") + 1]
    stdin = _call(tmp_path)["stdin"]
    assert "a fake app" in stdin and "Framework hint: react" in stdin and "NEW project" in stdin
    assert any("fake claude: thinking" in line for line in log)


def test_fenced_result_with_prose(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    result = _run(fake_claude, "fenced", GenerationRequest("x"), log, tmp_path)
    assert result.contract.meta["slug"] == "fake-app"


def test_is_error_with_exit_zero_is_a_generation_error(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    with pytest.raises(GenerationError) as info:
        _run(fake_claude, "is_error", GenerationRequest("x"), log, tmp_path)
    assert info.value.code == "generation_failed"
    assert "API Error: 529" in info.value.message


def test_error_max_turns_exit_one(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    with pytest.raises(GenerationError) as info:
        _run(fake_claude, "max_turns", GenerationRequest("x"), log, tmp_path)
    assert "error_max_turns" in info.value.message and "maximum number of turns" in info.value.message


def test_garbage_stdout_is_a_generation_error(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    with pytest.raises(GenerationError, match="printed no JSON result"):
        _run(fake_claude, "garbage", GenerationRequest("x"), log, tmp_path)


def test_hang_past_timeout(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    with pytest.raises(GenerationError, match="timed out after 1 s"):
        _run(fake_claude, "hang", GenerationRequest("x"), log, tmp_path, timeout_s=1)


def test_result_that_is_not_a_contract_is_invalid_output(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    with pytest.raises(ContractError) as info:
        _run(fake_claude, "success", GenerationRequest("x"), log, tmp_path,
             result_text="I'm sorry, I can't build that.")
    assert info.value.code == "invalid_output"


def test_result_with_an_escaping_path_is_invalid_output(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    bad = {"files": [{"path": "../../.ssh/authorized_keys", "content": "ssh-rsa x"}]}
    with pytest.raises(ContractError) as info:
        _run(fake_claude, "fenced", GenerationRequest("x", base_files={"a": "b"}), log, tmp_path,
             result_text=json.dumps(bad))
    assert info.value.field == "files[0].path"


def test_rebuild_sends_current_files_and_accepts_a_delta(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    base = {"src/main.js": "document.body.append('v1')", "package.json": "{}", "pnpm-lock.yaml": "lockfileVersion: 9",
            "big.txt": "x" * 200_000}
    result = _run(fake_claude, "success", GenerationRequest("refine it", base_files=base), log, tmp_path)
    assert result.contract.is_delta
    assert result.contract.files == {"src/main.js": "document.body.append('refined')\n"}
    stdin = _call(tmp_path)["stdin"]
    assert "REBUILD" in stdin
    assert "=== FILE: src/main.js ===\ndocument.body.append('v1')" in stdin
    assert "pnpm-lock.yaml" not in stdin  # the daemon owns the lockfile; never worth the tokens
    assert "omitted for size" in stdin and "big.txt" in stdin and "x" * 200_000 not in stdin


def test_missing_executable(tmp_path: Path, log: list[str]) -> None:
    gen = make_generator("claude", claude_executable=str(tmp_path / "claude"))
    with pytest.raises(GenerationError, match="cannot start"):
        gen.generate(GenerationRequest("x"), log.append)


def _streamed(fake: str, mode: str, req: GenerationRequest, log: list[str], tmp_path: Path,
              on_file: Any, **kw: Any) -> GenerationResult:
    env = {**os.environ, "FAKE_CLAUDE_MODE": mode, "FAKE_CLAUDE_RECORD": str(tmp_path / "call.json"),
           "FAKE_CLAUDE_CHUNK": "40", "FAKE_CLAUDE_PAUSE_S": "0.2"}
    gen = make_generator("claude", claude_executable=fake, env=env, **kw)
    assert isinstance(gen, StreamingGenerator)
    return gen.generate_streaming(req, log.append, on_file)


def test_streamed_answer_hands_over_each_file_in_order_and_returns_the_same_contract(
        fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    got: list[tuple[str, str]] = []
    result = _streamed(fake_claude, "success", GenerationRequest("a fake app"), log, tmp_path,
                       lambda p, c: got.append((p, c)))
    assert [p for p, _ in got] == ["package.json", "index.html", "src/main.js"]
    assert dict(got) == result.contract.files
    assert result.raw is not None and result.raw["type"] == "result"
    argv = _call(tmp_path)["argv"]
    assert argv[:5] == ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
    assert argv[argv.index("--system-prompt") + 1] == SYSTEM_PROMPT


def test_a_refused_streamed_file_stops_the_cli_and_propagates(fake_claude: str, tmp_path: Path,
                                                              log: list[str]) -> None:
    def refuse(path: str, content: str) -> None:
        raise ContractError(f"{path!r} refused", "streamed file path")

    with pytest.raises(ContractError, match=r"'package\.json' refused"):
        _streamed(fake_claude, "success", GenerationRequest("x"), log, tmp_path, refuse)


def test_streamed_errors_are_the_same_refusals(fake_claude: str, tmp_path: Path, log: list[str]) -> None:
    with pytest.raises(GenerationError, match="API Error: 529"):
        _streamed(fake_claude, "is_error", GenerationRequest("x"), log, tmp_path, lambda p, c: None)
    with pytest.raises(GenerationError, match="error_max_turns"):
        _streamed(fake_claude, "max_turns", GenerationRequest("x"), log, tmp_path, lambda p, c: None)
    with pytest.raises(GenerationError, match="printed no JSON result"):
        _streamed(fake_claude, "garbage", GenerationRequest("x"), log, tmp_path, lambda p, c: None)
    with pytest.raises(GenerationError, match="timed out after 1 s"):
        _streamed(fake_claude, "hang", GenerationRequest("x"), log, tmp_path, lambda p, c: None, timeout_s=1)


def test_only_the_claude_backend_streams() -> None:
    assert not isinstance(make_generator("template"), StreamingGenerator)
    assert not isinstance(make_generator("command", command=["true"]), StreamingGenerator)
