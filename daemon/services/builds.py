"""Builds: take a new project, a rebuild or a generate-only request, and answer with the build's outcome."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from daemon.core import versions
from daemon.core.contract import ContractError
from daemon.core.db import ProjectVersion
from daemon.core.errors import Unavailable
from daemon.generators import GenerationError, GenerationRequest
from daemon.intake import repair, requests, submit
from daemon.intake.requests import NewProjectBody, RebuildBody

if TYPE_CHECKING:
    from daemon.intake.queue import BuildQueue
    from daemon.runtime import Runtime


class Builds:
    """Admits builds onto the queue (the rate caps, quotas and fleet leases of `daemon.intake.submit`) and waits for
    their outcome. Methods that touch the database block: call them off the event loop."""

    def __init__(self, rt: Runtime, queue: BuildQueue) -> None:
        self._rt = rt
        self._queue = queue

    def check_prompt(self, prompt: str) -> None:
        """400 naming `prompt` when it is longer than [limits] max_prompt_chars (cheap: before any thread hop)."""
        requests.check_prompt_cap(prompt, self._rt.cfg.limits.max_prompt_chars)

    def new(self, req: NewProjectBody) -> ProjectVersion:
        """Queue a project's first build: 409 when it exists or is building, 429 past the user's cap."""
        return submit.submit_new(self._rt, self._queue, req)

    def rebuild(self, req: NewProjectBody | RebuildBody) -> ProjectVersion:
        """Queue a rebuild from the request's base version (default: the latest deployed)."""
        return submit.submit_rebuild(self._rt, self._queue, req)

    def rebuild_from(self, version_id: str, prompt: str) -> ProjectVersion:
        """Queue a rebuild with this version as its base (the dashboard's form): the API's parsing and caps."""
        base = versions.get(version_id)
        req = submit.parse_build_request({"userId": base.user_id, "projectId": base.project_id, "prompt": prompt,
                                          "baseVersionId": version_id}, rebuild=True,
                                         max_prompt=self._rt.cfg.limits.max_prompt_chars)
        return self.rebuild(req)

    def generate(self, prompt: str, framework: str | None) -> dict[str, Any]:
        """Run the generator only and return the seed's contract JSON; 503 when the generator fails or its output
        breaks the contract."""
        try:
            result = self._rt.generator.generate(GenerationRequest(prompt=prompt, framework=framework),
                                                 lambda _line: None)
        except GenerationError as exc:
            raise Unavailable(exc.message, code="generation_failed") from exc
        except ContractError as exc:
            raise Unavailable(str(exc), code="invalid_output") from exc
        return result.contract.to_json()

    async def answer(self, version_id: str, wait: bool) -> tuple[int, dict[str, Any]]:
        """The build's answer (status, body): with `wait`, once it is deployed or failed or after [server]
        wait_timeout_s (then the 202 form)."""
        rt = self._rt

        def settled() -> bool:  # ended, and so has its repair loop (README "Repair")
            v = versions.get(version_id)
            return v.status in submit.TERMINAL and not repair.pending(v)

        def repairing() -> bool:  # failed, and its repair loop goes on
            v = versions.get(version_id)
            return v.status in submit.TERMINAL and repair.pending(v)

        if wait and rt.cfg.server.wait_timeout_s > 0:
            # A waiter wakes at the version's first notification (deployed, failed, or uploaded and `deploying`
            # on a platform that confirms later: answered as it is); a failure its repair loop takes on notifies
            # again when the loop ends, so only then does the wait go on (or until the timeout).
            deadline = time.monotonic() + rt.cfg.server.wait_timeout_s
            while (left := deadline - time.monotonic()) > 0:
                await rt.waiters.wait(version_id, left, settled)
                if not await asyncio.to_thread(repairing):
                    break
        return await asyncio.to_thread(self._answer, version_id)

    def _answer(self, version_id: str) -> tuple[int, dict[str, Any]]:
        """The build's answer; a failure its repair loop fixed answers with the repaired version, and either way
        says what the loop did (`repair`)."""
        v = versions.get(version_id)
        loop = repair.answer(v)
        fixed = loop.get("repairedVersionId") if loop else None
        if fixed:
            status, body = submit.build_answer(self._rt, versions.get(fixed))
            body["repairOf"] = v.version_id
        else:
            status, body = submit.build_answer(self._rt, v)
        if loop is not None:
            body["repair"] = loop
        return status, body

    def repair(self, version_id: str, user_id: str, project_id: str) -> ProjectVersion:
        """Queue one repair attempt of a failed version from its ready request (409 when it has none)."""
        return repair.repair_now(self._rt, self._queue, version_id, user_id, project_id)
