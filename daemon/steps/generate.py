"""The version's file set: the generator's contract applied to the base (first build, rebuild, delta), or, for a
rollback, its target's recorded sources and lockfile."""

from __future__ import annotations

import json
from typing import Any

from daemon.core import quotas
from daemon.core.contract import ContractError, apply_contract
from daemon.core.db import ProjectVersion
from daemon.generators import GenerationError, GenerationRequest, StreamingGenerator
from daemon.project.failures import BuildFailed
from daemon.steps import streaming
from daemon.steps.context import BuildContext


def repair_request(ctx: BuildContext) -> dict[str, Any] | None:
    """A repair attempt's request: the diagnostics its parent (the failed version it repairs) recorded."""
    v = ctx.v
    if v.kind != "repair" or not v.parent_version_id:
        return None
    parent = ProjectVersion.get_or_none(ProjectVersion.version_id == v.parent_version_id)
    if parent is None or not parent.repair_request:
        raise BuildFailed("generation_failed", f"repair of {v.parent_version_id}: it holds no repair request")
    data = json.loads(parent.repair_request)
    return data if isinstance(data, dict) else None


class Generate:
    """Ask the generator, apply its contract to the base's sources."""

    name = "generate"
    timing = "generate"

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        rt, v = ctx.rt, ctx.v
        repair = repair_request(ctx)
        ctx.log.step(f"generating with {rt.generator.name}"
                     + (f" (repair attempt {v.repair_attempt} of {v.parent_version_id})" if repair else ""))
        req = GenerationRequest(prompt=v.prompt, framework=v.framework, base_files=ctx.base_files, repair=repair)
        generator = rt.generator
        try:
            # A first build streams when the backend can: files written and the install started as they come.
            if rt.cfg.generator.stream and ctx.base_files is None and isinstance(generator, StreamingGenerator):
                streamed = ctx.streamed = streaming.Streamed(ctx)
                ctx.workspace_scratch.callback(streamed.abort)  # a build ending early stops its install
                try:
                    gen = generator.generate_streaming(req, ctx.log.step, streamed.on_file)
                except BaseException:
                    streamed.abort()
                    raise
            else:
                gen = generator.generate(req, ctx.log.step)
        except GenerationError as exc:
            quotas.add_tokens(v.version_id, getattr(exc, "tokens", 0))  # a refused answer's tokens were spent too
            raise BuildFailed("generation_failed", exc.message) from exc
        except ContractError as exc:
            quotas.add_tokens(v.version_id, getattr(exc, "tokens", 0))
            raise BuildFailed("invalid_output", str(exc)) from exc
        ctx.check_lease()  # generation can take minutes: a droplet that lost the project records nothing of it
        quotas.add_tokens(v.version_id, gen.tokens)
        if gen.raw is not None:
            ctx.record(claude_json=gen.raw)
        try:
            files = apply_contract(ctx.base_files or {}, gen.contract)
        except ContractError as exc:
            raise BuildFailed("invalid_output", str(exc)) from exc
        ctx.log.step(f"contract: {len(files)} files ({'delta' if gen.contract.is_delta else 'full'})")
        md = gen.contract.meta.get("metadata")
        hint = md.get("targetPackage") if isinstance(md, dict) else None
        ctx.files, ctx.target_hint = dict(files), hint if isinstance(hint, str) else None


class Restore:
    """A rollback rebuilds its target's recorded sources and lockfile (its base) instead of generating."""

    name = "restore"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return True

    def run(self, ctx: BuildContext) -> None:
        if ctx.base_files is None:
            raise BuildFailed("generation_failed", "rollback target has no source snapshot")
        ctx.files = dict(ctx.base_files)
