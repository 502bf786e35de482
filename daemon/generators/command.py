"""The ``command`` generator: any executable that reads the request JSON on stdin and prints the contract."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from daemon.core.contract import ContractError, ContractLimits, parse_contract_text, validate_contract
from daemon.generators._proc import run_tool
from daemon.generators.base import GenerationError, GenerationRequest, GenerationResult


class CommandGenerator:
    """Runs ``argv`` with ``{prompt, framework, files}`` on stdin; its stdout must be the contract JSON.

    Exit status non-zero -> GenerationError carrying the stderr tail; timeout -> GenerationError (the
    whole process group is killed); stdout that breaks the contract -> ContractError.
    """

    name = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 600,
        limits: ContractLimits | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError("generator.command must be a non-empty list of strings (the argv to run)")
        self.argv = tuple(argv)
        self.timeout_s = timeout_s
        self.limits = limits or ContractLimits()
        self.env = env

    def generate(self, req: GenerationRequest, log: Callable[[str], None]) -> GenerationResult:
        """Run the command once and validate what it printed."""
        log(f"generator: command {self.argv[0]} ({'rebuild' if req.is_rebuild else 'new project'})")
        payload = json.dumps(req.to_json()).encode("utf-8")
        out = run_tool(
            self.argv,
            payload,
            timeout_s=self.timeout_s,
            env=self.env,
            log=log,
            stdout_cap=self.limits.max_text_chars,
        )
        if out.returncode != 0:
            tail = f": {out.stderr_tail}" if out.stderr_tail else " (no stderr)"
            raise GenerationError(f"generator command exited with status {out.returncode}{tail}")
        try:
            text = out.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError("generator output is not UTF-8 text") from None
        data = parse_contract_text(text, self.limits)
        contract = validate_contract(data, allow_delta=req.is_rebuild, limits=self.limits)
        log(f"generator: {'delta' if contract.is_delta else 'full contract'} with {len(contract.files)} files")
        return GenerationResult(contract=contract)
