"""The ``claude`` generator: Claude Code CLI in print mode with JSON output, the contract taken from ``result``;
or, streamed, with ``stream-json`` output whose text deltas hand over each file as it is written."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from daemon.core.contract import ContractError, ContractLimits, parse_contract_text, validate_contract
from daemon.generators._proc import ToolOutput, run_tool, stream_tool
from daemon.generators.base import FileSink, GenerationError, GenerationRequest, GenerationResult
from daemon.generators.repairtext import repair_text
from daemon.generators.streamparse import FileScanner

MAX_TURNS = 3
# The answer is text; no tool may touch the disk, run commands or reach the network on the daemon's host.
DISALLOWED_TOOLS = "Bash,Edit,Write,MultiEdit,NotebookEdit,Read,Glob,Grep,WebFetch,WebSearch,Task,TodoWrite"
CONTEXT_MAX_CHARS = 400_000
CONTEXT_MAX_FILE_CHARS = 100_000
# Never worth the tokens as context: the daemon writes these itself.
CONTEXT_SKIP = ("pnpm-lock.yaml", "pnpm-workspace.yaml", "package-lock.json", "yarn.lock")

SYSTEM_PROMPT = """\
You generate complete, buildable web projects as ONE JSON object and nothing else.

For a NEW project answer with exactly this shape (every key required, types as shown):
{"name": "project-name", "slug": "project-slug", "description": "...", "version": "0.1.0",
 "author": "TemplateSeed", "repository": "", "license": "MIT", "tech_stack": ["react", "vite", ...],
 "metadata": {"tags": [], "industry_tags": [], "style_tags": [], "core_pages": {}, "components": [],
              "design_tokens": {}, "rsc_path": ""},
 "templateFiles": [{"path": "package.json", "content": "..."}, ...],
 "files": [{"path": "src/App.tsx", "content": "..."}, ...]}
templateFiles hold the scaffold (package.json, vite.config.ts, tsconfig files, index.html); files hold the
app's own sources. A path in both takes its content from files.

Rules:
- Default stack unless asked otherwise: Vite 6 + React 19 + TypeScript 5.7 + Tailwind CSS v4 through
  @tailwindcss/vite (CSS entry contains `@import "tailwindcss";`). package.json scripts.build is
  "tsc -b && vite build"; include src/vite-env.d.ts with `/// <reference types="vite/client" />`.
- The project must install with pnpm and build offline of any service: no env secrets, no postinstall steps.
- Paths are relative POSIX paths ("src/App.tsx"): no leading "/", no "..", no backslashes.
- Never write .npmrc, pnpm-workspace.yaml, .pnpmfile.cjs, pnpm-lock.yaml, node_modules/ or .git/:
  the build service owns them. No symlinks. Text files only; keep every file under 1 MB.
- Do not use tools. Do not explain. Output the JSON object only (a ```json fenced block is tolerated).

For a REBUILD you receive the current files. Change only what the request needs and answer with a delta:
{"delta": true, "files": [{"path": "...", "content": "<full new content>"}], "deleted": ["old/path.ts"]}
List only added or changed files, each with its complete content. Leave package.json alone unless the
request needs a new dependency. You may instead answer with a full contract when rewriting everything.
"""


class ClaudeGenerator:
    """Asks the Claude Code CLI (``claude -p --output-format json``) for the contract.

    The exit code is not trusted: stdout's JSON decides (``is_error``, ``subtype``). A CLI failure ->
    GenerationError; an answer that is not a valid contract -> ContractError. The raw CLI JSON is kept.
    """

    name = "claude"

    def __init__(
        self,
        *,
        executable: str = "claude",
        model: str | None = None,
        timeout_s: float = 600,
        limits: ContractLimits | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.executable = executable
        self.model = model
        self.timeout_s = timeout_s
        self.limits = limits or ContractLimits()
        self.env = env

    def argv(self) -> list[str]:
        """The CLI invocation (the prompt goes on stdin); never ``--verbose``, which turns json into a list."""
        argv = [self.executable, "-p", "--output-format", "json", "--system-prompt", SYSTEM_PROMPT]
        argv += ["--max-turns", str(MAX_TURNS), "--disallowedTools", DISALLOWED_TOOLS]
        if self.model:
            argv += ["--model", self.model]
        return argv

    def stream_argv(self) -> list[str]:
        """The streamed invocation: ``stream-json`` needs ``--verbose``; partial messages carry the text deltas."""
        argv = self.argv()
        argv[argv.index("json")] = "stream-json"
        return [*argv[:4], "--verbose", "--include-partial-messages", *argv[4:]]

    def generate(self, req: GenerationRequest, log: Callable[[str], None]) -> GenerationResult:
        """Run the CLI once, check its verdict, then parse and validate the contract from ``result``."""
        what = "repair" if req.repair is not None else "rebuild" if req.is_rebuild else "new project"
        log(f"generator: claude{' model ' + self.model if self.model else ''} ({what})")
        prompt = build_prompt(req, log)
        with tempfile.TemporaryDirectory(prefix="previewd-claude-") as cwd:  # an empty, throwaway cwd
            out = run_tool(
                self.argv(),
                prompt.encode("utf-8"),
                timeout_s=self.timeout_s,
                env=self.env,
                log=log,
                stdout_cap=self.limits.max_text_chars + 1_000_000,
                cwd=cwd,
            )
        return self._verdict(_result_object(out.stdout), out, req, log)

    def generate_streaming(self, req: GenerationRequest, log: Callable[[str], None],
                           on_file: FileSink) -> GenerationResult:
        """Like ``generate`` (same checks, same errors, the contract from the final ``result``), reading the CLI's
        ``stream-json`` events: each file entry is handed to ``on_file`` as soon as its text is complete."""
        log(f"generator: claude{' model ' + self.model if self.model else ''} "
            f"({'rebuild' if req.is_rebuild else 'new project'}, streamed)")
        prompt = build_prompt(req, log)
        events = _StreamEvents(on_file)
        # Every event line is at most the whole answer (an assistant message) plus its envelope.
        cap = 4 * (self.limits.max_text_chars + 1_000_000)
        with tempfile.TemporaryDirectory(prefix="previewd-claude-") as cwd:
            out = stream_tool(self.stream_argv(), prompt.encode("utf-8"), timeout_s=self.timeout_s, env=self.env,
                              log=log, stdout_cap=cap, on_line=events.line, cwd=cwd)
        return self._verdict(events.result, out, req, log, tail=events.last_line)

    def _verdict(self, raw: dict[str, Any] | None, out: ToolOutput, req: GenerationRequest,
                 log: Callable[[str], None], tail: bytes = b"") -> GenerationResult:
        """The CLI's result object judged (is_error, subtype), then the contract parsed and validated."""
        if raw is None:
            detail = out.stderr_tail or (out.stdout or tail)[-500:].decode("utf-8", "replace") or "nothing"
            raise GenerationError(f"claude (exit {out.returncode}) printed no JSON result: {detail}")
        tokens = usage_tokens(raw)
        try:
            subtype = raw.get("subtype")
            if raw.get("is_error") is True or subtype != "success":
                raise GenerationError(f"claude reported {subtype or 'an error'}: {_error_detail(raw)}")
            result = raw.get("result")
            if not isinstance(result, str):
                raise GenerationError("claude reported success without a text result")
            data = parse_contract_text(result, self.limits)
            contract = validate_contract(data, allow_delta=req.is_rebuild, limits=self.limits)
        except (GenerationError, ContractError) as exc:
            setattr(exc, "tokens", tokens)  # noqa: B010  # spent all the same: the meter counts them
            raise
        cost = raw.get("total_cost_usd")
        log(f"generator: {'delta' if contract.is_delta else 'full contract'} with {len(contract.files)} files"
            f"{f', cost ${cost}' if isinstance(cost, int | float) else ''}, {tokens} tokens")
        return GenerationResult(contract=contract, raw=raw, tokens=tokens)


def usage_tokens(raw: Mapping[str, Any]) -> int:
    """Input + output tokens of a CLI result (``usage``; cache reads and writes count as input), 0 when absent."""
    usage = raw.get("usage")
    if not isinstance(usage, dict):
        return 0
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(int(v) for k in keys if isinstance(v := usage.get(k), int) and not isinstance(v, bool) and v > 0)


def build_prompt(req: GenerationRequest, log: Callable[[str], None] | None = None) -> str:
    """The user prompt: the request, the framework hint, and on a rebuild the current files as context (a repair
    puts its diagnostics before them)."""
    parts = [f"Request: {req.prompt.strip()}"]
    if req.framework:
        parts.append(f"Framework hint: {req.framework}")
    if req.base_files is None:
        parts.append("This is a NEW project: answer with the full JSON contract.")
        return "\n\n".join(parts)
    if req.repair is not None:
        parts.append(repair_text(req.repair))
    else:
        parts.append("This is a REBUILD of the project below: answer with a delta (or a full contract).")
    used = 0
    omitted: list[str] = []
    for path, content in sorted(req.base_files.items()):
        if path.rsplit("/", 1)[-1] in CONTEXT_SKIP:
            continue
        if len(content) > CONTEXT_MAX_FILE_CHARS or used + len(content) > CONTEXT_MAX_CHARS:
            omitted.append(path)
            continue
        used += len(content)
        parts.append(f"=== FILE: {path} ===\n{content}")
    if omitted:
        parts.append("Files present but omitted for size (keep them unless the request says otherwise): "
                     + ", ".join(omitted))
        if log:
            log(f"generator: {len(omitted)} large files left out of the context")
    return "\n\n".join(parts)


class _StreamEvents:
    """Reads ``stream-json`` lines: text deltas (``stream_event``) or whole assistant messages feed a scanner per
    message; the ``result`` event is kept for the verdict."""

    def __init__(self, on_file: FileSink) -> None:
        self.on_file = on_file
        self.scanner = FileScanner()
        self.deltas = False  # the current message came as deltas: its whole copy is not scanned again
        self.result: dict[str, Any] | None = None
        self.last_line = b""

    def line(self, raw: bytes) -> None:
        self.last_line = raw[-500:]
        try:
            ev = json.loads(raw)
        except (ValueError, RecursionError):
            return  # not an event (a stray print): the result event alone decides
        if not isinstance(ev, dict):
            return
        kind = ev.get("type")
        if kind == "result":
            self.result = ev
        elif kind == "stream_event" and isinstance(ev.get("event"), dict):
            inner = ev["event"]
            if inner.get("type") == "message_start":
                self.scanner, self.deltas = FileScanner(), False
            delta = inner.get("delta")
            if inner.get("type") == "content_block_delta" and isinstance(delta, dict) \
                    and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self.deltas = True
                self._scan(delta["text"])
        elif kind == "assistant" and not self.deltas:
            message = ev.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            self.scanner = FileScanner()
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                    self._scan(block["text"])
        if kind == "assistant":
            self.deltas = False

    def _scan(self, text: str) -> None:
        for entry in self.scanner.feed(text):
            self.on_file(entry["path"], entry["content"])


def _result_object(stdout: bytes) -> dict[str, Any] | None:
    """The CLI's result object from stdout (one object; or the last ``result`` of a verbose list)."""
    try:
        data = json.loads(stdout.decode("utf-8").strip() or "null")
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(data, list):
        data = next((d for d in reversed(data) if isinstance(d, dict) and d.get("type") == "result"), None)
    return data if isinstance(data, dict) else None


def _error_detail(raw: dict[str, Any]) -> str:
    """A short human reason from an error result (``errors[]`` or ``result`` text)."""
    errors = raw.get("errors")
    if isinstance(errors, list) and errors:
        text = "; ".join(str(e) for e in errors)
    elif isinstance(raw.get("result"), str) and raw["result"]:
        text = raw["result"]
    else:
        text = "no detail given"
    return text[:500]

