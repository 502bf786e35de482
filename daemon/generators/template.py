"""The ``template`` generator: offline and deterministic; a Vite + React + Tailwind page built from the prompt."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from daemon.core.contract import ContractLimits, validate_contract
from daemon.generators import page_edits, page_kinds, page_model, template_repair
from daemon.generators import template_app as app
from daemon.generators.base import GenerationError, GenerationRequest, GenerationResult
from daemon.generators.page_model import project_title

__all__ = ["TemplateGenerator", "initial_model", "project_title", "requested_dependencies", "slugify"]

_DEP_RE = re.compile(r"\b(?:add|install|use|include)\s+(?:the\s+)?(?:npm\s+)?(?:package|dependency|library|lib)\s+"
                     r"((?:@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*)(?:@([A-Za-z0-9.^~<>=*+-]{1,40}))?"
                     r"(?=[\s,;!?]|$)", re.I)
# Edits a first prompt may carry besides its sections ("... called X, dark, with the headline Y").
_FIRST_PROMPT_OPS = ("set", "contact", "hours")


class TemplateGenerator:
    """Writes the pinned Vite + React + TypeScript + Tailwind v4 app; the page is a model built from the prompt.

    New project -> a full contract. Rebuild -> the previous version's model (read back from
    ``src/content.ts``) with the prompt's edits applied, as a delta of the files that changed: usually
    ``src/content.ts`` alone, so the pipeline can skip ``pnpm install``. The same request always yields
    the same output; the prompt itself is never written into the page.
    """

    name = "template"

    def __init__(self, *, limits: ContractLimits | None = None) -> None:
        self.limits = limits or ContractLimits()

    def generate(self, req: GenerationRequest, log: Callable[[str], None]) -> GenerationResult:
        """Build the contract for ``req`` and validate it like any other generator's output."""
        if req.framework and req.framework.lower() not in ("react", "vite", "react-vite"):
            log(f"generator: template builds React + Vite only; framework hint {req.framework!r} ignored")
        if req.repair is not None and req.base_files is not None:
            fixed = template_repair.repair_files(req.repair, req.base_files, log)
            data = {"delta": True, "files": [{"path": p, "content": c} for p, c in sorted(fixed.items())],
                    "deleted": []}
        elif req.base_files is not None:
            data = self.refine(req.prompt, req.base_files, log)
        else:
            data = self.create(req.prompt, log)
        contract = validate_contract(data, allow_delta=req.is_rebuild, limits=self.limits)
        log(f"generator: template {'delta' if contract.is_delta else 'project'} "
            f"({', '.join(sorted(contract.files))})")
        return GenerationResult(contract=contract)

    def create(self, prompt: str, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """The full contract (seed section 2 shape) for a new project."""
        model = initial_model(prompt, log)
        slug = slugify(model["title"])
        pkg = app.package_json(slug)
        template_files = {"package.json": app.dump_json(pkg), **app.scaffold_files(model["title"])}
        files = {**app.source_files(), **app.model_files(model)}
        return {
            "name": slug,
            "slug": slug,
            "description": f"{model['title']}: {model['subheadline']}"[:200],
            "version": "0.1.0",
            "author": "TemplateSeed",
            "repository": "",
            "license": "MIT",
            "tech_stack": list(app.TECH_STACK),
            "metadata": {
                "tags": page_model.section_kinds(model),
                "industry_tags": [model["kind"]] if model["kind"] != "generic" else [],
                "style_tags": ["dark" if model["dark"] else "light", model["accent"], model["font"]],
                "core_pages": {"/": "App"},
                "components": ["App", "Nav", "Cards", "Pricing", "Quotes", "Stats", "Table", "Faq", "Contact"],
                "design_tokens": {"accent": model["accent"], "font": model["font"]},
                "rsc_path": "",
            },
            "templateFiles": [{"path": p, "content": c} for p, c in template_files.items()],
            "files": [{"path": p, "content": c} for p, c in files.items()],
        }

    def refine(self, prompt: str, base: Mapping[str, str], log: Callable[[str], None] | None = None
               ) -> dict[str, Any]:
        """A delta for a rebuild: the base's page model with the prompt's edits, as the files that changed."""
        say = log or _quiet
        current = app.parse_content_ts(base.get(app.CONTENT_PATH, ""))
        if current is None:
            raise GenerationError(
                f"the template generator can only refine projects it generated ({app.CONTENT_PATH} is missing "
                "or not its own); use the claude or command generator for this project"
            )
        legacy = not page_model.is_model(current)
        model = page_model.from_legacy(current) if legacy else current
        parsed = page_edits.parse(prompt)
        for edit in parsed.edits:
            say(f"generator: edit {edit.describe()}")
        for clause in parsed.ignored:
            say(f"generator: template did not understand {clause!r}; nothing changed for it")
        edited = page_edits.apply(model, parsed.edits)
        wanted = {**app.model_files(edited), "index.html": app.index_html(edited["title"])}
        if legacy:
            # A page from the first template, whose app printed the prompts: it moves to this one's sources.
            say("generator: upgrading the page from the first template's layout")
            wanted.update(app.source_files())
        changed = {p: c for p, c in wanted.items() if base.get(p) != c}
        deps = requested_dependencies(prompt)
        if deps:
            changed["package.json"] = _with_dependencies(base.get("package.json"), deps)
        if not changed:
            say("generator: the prompt asked for nothing the template can change; the page stays as it was")
            changed = {app.CONTENT_PATH: wanted[app.CONTENT_PATH]}
        return {"delta": True, "files": [{"path": p, "content": c} for p, c in changed.items()], "deleted": []}


def initial_model(prompt: str, log: Callable[[str], None] | None = None) -> page_model.Model:
    """The page for a new project: the business's kind, name and sections from the prompt, then its settings."""
    text = " ".join(prompt.split())
    kind = page_kinds.kind_for(text)
    model = page_model.new_model(project_title(text), kind, page_edits.sections_in(text))
    edits = [e for e in page_edits.parse(text, first=True).edits if e.op in _FIRST_PROMPT_OPS]
    for edit in edits:
        (log or _quiet)(f"generator: edit {edit.describe()}")
    return page_edits.apply(model, edits)


def _quiet(_line: str) -> None:
    """A log that drops its lines."""


def slugify(title: str) -> str:
    """Lowercase ``a-z0-9-`` slug of at most 48 characters (``project`` when nothing is left)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:48].strip("-")
    return slug or "project"


def requested_dependencies(prompt: str) -> dict[str, str]:
    """npm packages the prompt explicitly asks to add ("add the package zod@3"), name -> version spec."""
    found = {}
    for m in _DEP_RE.finditer(prompt):
        name, version = m.group(1).lower().rstrip("."), (m.group(2) or "").rstrip(".")
        found[name] = version or "latest"
    return found


def _with_dependencies(package_json: str | None, deps: Mapping[str, str]) -> str:
    """The base package.json with ``deps`` added to ``dependencies`` (key order kept, deps sorted)."""
    try:
        pkg = json.loads(package_json or "")
    except ValueError:
        raise GenerationError("package.json of the base version is not valid JSON; cannot add a dependency") from None
    if not isinstance(pkg, dict):
        raise GenerationError("package.json of the base version is not a JSON object; cannot add a dependency")
    current = pkg.get("dependencies")
    if not isinstance(current, dict):
        current = {}
    pkg["dependencies"] = dict(sorted({**current, **deps}.items()))
    return app.dump_json(pkg)


