"""The ``template`` generator: offline and deterministic; a Vite + React + Tailwind page built from the prompt."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from daemon.core.contract import ContractLimits, validate_contract
from daemon.generators import template_app as app
from daemon.generators.base import GenerationError, GenerationRequest, GenerationResult

MAX_UPDATES = 5
ACCENTS = ("blue", "emerald", "violet", "rose", "amber", "teal", "indigo", "orange")
_COLOR_WORDS = {
    "blue": "blue", "navy": "blue", "sky": "blue", "green": "emerald", "emerald": "emerald",
    "purple": "violet", "violet": "violet", "lavender": "violet", "red": "rose", "pink": "rose",
    "rose": "rose", "yellow": "amber", "gold": "amber", "amber": "amber", "teal": "teal",
    "turquoise": "teal", "indigo": "indigo", "orange": "orange", "coral": "orange",
}
# Section kinds in page order, each with the prompt words that ask for it.
SECTION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "features": ("feature", "features", "benefit", "benefits"),
    "services": ("service", "services", "offering", "offerings"),
    "menu": ("menu", "dishes", "restaurant", "cafe", "coffee", "bakery", "food"),
    "gallery": ("gallery", "portfolio", "photos", "photography", "showcase"),
    "stats": ("stats", "statistics", "numbers", "metrics"),
    "team": ("team", "staff", "founders", "people"),
    "testimonials": ("testimonial", "testimonials", "review", "reviews"),
    "pricing": ("pricing", "price", "prices", "plans", "plan", "subscription", "tiers"),
    "faq": ("faq", "faqs", "questions"),
    "contact": ("contact", "booking", "book", "appointment", "appointments", "reservation", "reservations"),
}
DEFAULT_SECTIONS = ("features", "testimonials", "contact")
_HEADINGS = {
    "features": "Features", "services": "Services", "menu": "Menu", "gallery": "Gallery",
    "stats": "By the numbers", "team": "Meet the team", "testimonials": "What people say",
    "pricing": "Pricing", "faq": "Frequently asked questions", "contact": "Get in touch",
}
_TAGLINES = ("Built for people who care", "Simple, fast and friendly", "Made with care",
             "Everything you need, nothing you don't", "Start today, grow tomorrow")
_CTAS = ("Get started", "Book now", "Say hello", "Start free", "Join today")
_FILLER = {"a", "an", "the", "my", "our", "me", "us", "please", "build", "create", "make", "generate",
           "design", "write", "simple", "modern", "new", "nice", "beautiful", "landing", "page", "website",
           "site", "web", "one", "single", "for", "of", "to", "with", "app", "application"}
_REMOVE_WORDS = r"(?:remove|delete|drop|hide|without|no|get rid of)"
_NAME_RE = re.compile(
    r"\b(?:called|named|titled|rename(?:d)?(?: it)? to)\s+[\"“']?([A-Za-z0-9][^\"”'.,!?;:\n]{0,48})", re.I
)
_SUBJECT_RE = re.compile(r"\bfor\s+(?:a|an|the|my|our)?\s*([A-Za-z0-9][A-Za-z0-9 '&-]{1,60}?)"
                         r"(?=\s*[,.!?;:]|\s+(?:with|that|which|where|who|to|and|in|featuring)\b|\s*$)", re.I)
_LEAD_RE = re.compile(
    r"^(?:please\s+)?(?:build|create|make|generate|design|write)\s+(?:me\s+|us\s+)?(?:(?:a|an|the)\s+)?"
    r"(?:(?:simple|modern|new|single|one|nice|beautiful|clean)\b[- ]?(?:page\s+)?\s*)*"
    r"(?:(?:landing page|web ?site|homepage|home page|web app|site|app|page)\b\s*)?(?:for\s+)?",
    re.I,
)
_QUOTED_RE = re.compile(r"[\"“]([^\"”\n]{1,200})[\"”]")
_DEP_RE = re.compile(r"\b(?:add|install|use|include)\s+(?:the\s+)?(?:npm\s+)?(?:package|dependency|library|lib)\s+"
                     r"((?:@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*)(?:@([A-Za-z0-9.^~<>=*+-]{1,40}))?"
                     r"(?=[\s,;!?]|$)", re.I)


class TemplateGenerator:
    """Writes the pinned Vite + React + TypeScript + Tailwind v4 app; the page's content comes from the prompt.

    New project -> a full contract. Rebuild -> a delta rewriting ``src/content.ts`` only (and package.json
    when the prompt asks for a dependency), so the pipeline can skip ``pnpm install``. The same request
    always yields the same output.
    """

    name = "template"

    def __init__(self, *, limits: ContractLimits | None = None) -> None:
        self.limits = limits or ContractLimits()

    def generate(self, req: GenerationRequest, log: Callable[[str], None]) -> GenerationResult:
        """Build the contract for ``req`` and validate it like any other generator's output."""
        if req.framework and req.framework.lower() not in ("react", "vite", "react-vite"):
            log(f"generator: template builds React + Vite only; framework hint {req.framework!r} ignored")
        data = self.refine(req.prompt, req.base_files) if req.base_files is not None else self.create(req.prompt)
        contract = validate_contract(data, allow_delta=req.is_rebuild, limits=self.limits)
        log(f"generator: template {'delta' if contract.is_delta else 'project'} "
            f"({', '.join(sorted(contract.files))})")
        return GenerationResult(contract=contract)

    def create(self, prompt: str) -> dict[str, Any]:
        """The full contract (seed section 2 shape) for a new project."""
        content = initial_content(prompt)
        slug = slugify(content["title"])
        pkg = app.package_json(slug)
        template_files = {"package.json": app.dump_json(pkg), **app.scaffold_files(content["title"])}
        files = {**app.source_files(), app.CONTENT_PATH: app.content_ts(content)}
        kinds = [s["kind"] for s in content["sections"]]
        return {
            "name": slug,
            "slug": slug,
            "description": _sentence(prompt, 200),
            "version": "0.1.0",
            "author": "TemplateSeed",
            "repository": "",
            "license": "MIT",
            "tech_stack": list(app.TECH_STACK),
            "metadata": {
                "tags": kinds,
                "industry_tags": [],
                "style_tags": ["dark" if content["dark"] else "light", content["accent"]],
                "core_pages": {"/": "App"},
                "components": ["App", "Cards", "Pricing", "Quotes", "Stats", "Faq", "Contact"],
                "design_tokens": {"accent": content["accent"]},
                "rsc_path": "",
            },
            "templateFiles": [{"path": p, "content": c} for p, c in template_files.items()],
            "files": [{"path": p, "content": c} for p, c in files.items()],
        }

    def refine(self, prompt: str, base: Mapping[str, str]) -> dict[str, Any]:
        """A delta for a rebuild: the page content updated from the prompt; package.json only for a dependency."""
        current = app.parse_content_ts(base.get(app.CONTENT_PATH, ""))
        if current is None:
            raise GenerationError(
                f"the template generator can only refine projects it generated ({app.CONTENT_PATH} is missing "
                "or not its own); use the claude or command generator for this project"
            )
        changed = {app.CONTENT_PATH: app.content_ts(refined_content(current, prompt))}
        deps = requested_dependencies(prompt)
        if deps:
            changed["package.json"] = _with_dependencies(base.get("package.json"), deps)
        return {"delta": True, "files": [{"path": p, "content": c} for p, c in changed.items()], "deleted": []}


def initial_content(prompt: str) -> dict[str, Any]:
    """The page content for a new project: title, hero, accent and sections picked from the prompt."""
    text = " ".join(prompt.split())
    seed = _seed(text)
    title = project_title(text)
    kinds = [k for k in SECTION_KEYWORDS if _mentions(text, k)] or list(DEFAULT_SECTIONS)
    return {
        "title": title,
        "tagline": _pick(_TAGLINES, seed, 0),
        "hero": hero_text(text) or f"Welcome to {title}.",
        "cta": _pick(_CTAS, seed, 1),
        "accent": _accent(text) or _pick(ACCENTS, seed, 2),
        "dark": bool(re.search(r"\bdark\b", text, re.I)),
        "sections": [_section(k, title, seed) for k in kinds],
        "updates": [],
    }


def refined_content(current: dict[str, Any], prompt: str) -> dict[str, Any]:
    """``current`` changed as the refinement prompt asks: sections added/removed, title, colours, hero."""
    text = " ".join(prompt.split())
    out = json.loads(json.dumps(current))  # deep copy of plain JSON data
    seed = _seed(text)
    name = _NAME_RE.search(text)
    if name:
        out["title"] = _clean_title(name.group(1))
    quoted = _QUOTED_RE.search(text)
    if quoted and re.search(r"\b(hero|headline|heading|intro)\b", text, re.I):
        out["hero"] = quoted.group(1).strip()
    elif quoted and re.search(r"\btagline\b", text, re.I):
        out["tagline"] = quoted.group(1).strip()
    accent = _accent(text)
    if accent:
        out["accent"] = accent
    if re.search(r"\bdark\b", text, re.I):
        out["dark"] = True
    elif re.search(r"\blight\b", text, re.I):
        out["dark"] = False
    sections = {s.get("kind"): s for s in out.get("sections", []) if isinstance(s, dict)}
    for kind in SECTION_KEYWORDS:
        if not _mentions(text, kind):
            continue
        if _asks_removal(text, kind):
            sections.pop(kind, None)
        elif kind not in sections:
            sections[kind] = _section(kind, out["title"], seed)
    out["sections"] = [sections[k] for k in SECTION_KEYWORDS if k in sections]
    out["updates"] = [*out.get("updates", []), _sentence(text, 160)][-MAX_UPDATES:]
    return out


def project_title(text: str) -> str:
    """A short title: an explicit name ("called X"), else the subject ("for a X"), else the prompt's key words."""
    m = _NAME_RE.search(text) or _SUBJECT_RE.search(text)
    if m:
        title = _clean_title(m.group(1))
        if title:
            return title
    words = [w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9'&-]*", text) if w.lower() not in _FILLER]
    return _clean_title(" ".join(words[:4])) or "My Project"


def hero_text(text: str) -> str:
    """The prompt's first sentence as a description: "Build a site for a bakery with X" -> "A bakery with X"."""
    return _sentence(_LEAD_RE.sub("", text.strip()), 220)


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


def _section(kind: str, title: str, seed: int) -> dict[str, Any]:
    """One section of ``kind`` with three items worded for the project (chosen by the prompt's hash)."""
    subject = title
    items: list[dict[str, str]]
    if kind == "pricing":
        base = 9 + seed % 3 * 5
        items = [
            {"title": "Starter", "meta": f"${base}/mo", "text": f"Everything to try {subject} on your own."},
            {"title": "Pro", "meta": f"${base * 3}/mo", "text": "More capacity, priority support and insights."},
            {"title": "Business", "meta": f"${base * 8}/mo", "text": "For teams: shared access, SSO and an SLA."},
        ]
    elif kind == "testimonials":
        people = [("Ana P.", "Designer"), ("Sam K.", "Founder"), ("Lee M.", "Regular customer"), ("Ravi S.", "Teacher")]
        quotes = [f"{subject} made my week so much easier.", "Friendly, fast and exactly what I needed.",
                  "I recommend it to everyone I know.", "Best decision we made this year."]
        items = [{"title": people[(seed + i) % 4][0], "meta": people[(seed + i) % 4][1], "text": quotes[(seed + i) % 4]}
                 for i in range(3)]
    elif kind == "stats":
        items = [{"title": "Happy customers", "meta": f"{(seed % 9 + 1) * 1000}+", "text": "and counting"},
                 {"title": "Average rating", "meta": f"4.{seed % 3 + 7}", "text": "out of 5"},
                 {"title": "Years running", "meta": str(seed % 12 + 3), "text": "of steady growth"}]
    elif kind == "faq":
        items = [{"title": f"What is {subject}?", "meta": "", "text": f"{subject} is here to help you get more done."},
                 {"title": "How do I get started?", "meta": "", "text": "Use the button at the top of the page."},
                 {"title": "Can I cancel anytime?", "meta": "", "text": "Yes, there are no long-term commitments."}]
    elif kind == "contact":
        items = []
    else:
        pool = _ITEM_POOLS[kind]
        items = [{"title": t, "meta": m, "text": x.format(subject=subject)}
                 for t, m, x in (pool[(seed + i) % len(pool)] for i in range(3))]
    intros = {"contact": f"Questions about {subject}? Send us a note.", "pricing": "Simple plans that grow with you."}
    return {"id": kind, "kind": kind, "heading": _HEADINGS[kind],
            "intro": intros.get(kind, f"A closer look at {subject}."), "items": items}


_ITEM_POOLS: dict[str, list[tuple[str, str, str]]] = {
    "features": [("Fast", "01", "{subject} responds instantly, on any device."),
                 ("Simple", "02", "Clear and friendly from the very first visit."),
                 ("Reliable", "03", "Always on, so you can count on {subject}."),
                 ("Secure", "04", "Your data stays private and protected."),
                 ("Flexible", "05", "Adapts to the way you already work.")],
    "services": [("Consultation", "From $40", "A friendly first talk about what you need."),
                 ("Full service", "From $120", "We take care of everything, start to finish."),
                 ("Follow-up", "Free", "We check in to make sure all is well."),
                 ("Workshops", "From $60", "Learn the essentials of {subject} with us.")],
    "menu": [("House special", "$14", "Our signature dish, made fresh every day."),
             ("Seasonal salad", "$11", "Local greens with a bright citrus dressing."),
             ("Flat white", "$4", "Double shot, silky milk."),
             ("Sweet of the day", "$6", "Ask us what came out of the oven this morning.")],
    "gallery": [("Morning light", "2024", "A quiet start captured at {subject}."),
                ("In the details", "2024", "Craft you can see up close."),
                ("Together", "2025", "The people who make {subject} special."),
                ("After hours", "2025", "When the day winds down.")],
    "team": [("Jordan Blake", "Founder", "Started {subject} to make things better."),
             ("Priya Nair", "Lead designer", "Cares about every pixel."),
             ("Marco Silva", "Operations", "Keeps everything running smoothly."),
             ("Emma Chen", "Support", "Here for you whenever you need help.")],
}


def _mentions(text: str, kind: str) -> bool:
    """Whether the prompt names a section kind (whole words only)."""
    return any(re.search(rf"\b{re.escape(w)}\b", text, re.I) for w in SECTION_KEYWORDS[kind])


def _asks_removal(text: str, kind: str) -> bool:
    """Whether a removal word precedes one of the kind's words in the same clause."""
    words = "|".join(re.escape(w) for w in SECTION_KEYWORDS[kind])
    return bool(re.search(rf"\b{_REMOVE_WORDS}\b[^.,;]*?\b(?:{words})\b", text, re.I))


def _accent(text: str) -> str | None:
    """The accent colour named in the prompt, if any (the last one wins)."""
    found = [_COLOR_WORDS[w.lower()] for w in re.findall(r"[A-Za-z]+", text) if w.lower() in _COLOR_WORDS]
    return found[-1] if found else None


def _clean_title(raw: str) -> str:
    """Title-case at most five words, dropping leading filler words."""
    words = raw.strip().split()
    while words and words[0].lower() in {"a", "an", "the", "my", "our"}:
        words = words[1:]
    words = words[:5]
    while words and words[-1].lower() in _FILLER:
        words = words[:-1]
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in words)[:60]


def _sentence(text: str, limit: int) -> str:
    """The prompt's first sentence, capitalised and trimmed to ``limit`` characters."""
    text = " ".join(text.split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    if len(first) > limit:
        first = first[: limit - 1].rsplit(" ", 1)[0] + "…"
    return first[:1].upper() + first[1:]


def _seed(text: str) -> int:
    """A stable number from the prompt, so choices vary between prompts but never between runs."""
    return int.from_bytes(hashlib.sha256(text.lower().encode("utf-8")).digest()[:4], "big")


def _pick(options: tuple[str, ...], seed: int, salt: int) -> str:
    """A stable choice from ``options``."""
    return options[(seed >> (salt * 3)) % len(options)]
