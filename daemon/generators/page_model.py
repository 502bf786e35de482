"""The template's page model: business, headline, sections and theme as plain JSON (what ``src/content.ts`` holds).

The model is the single source of the page: the app renders it, a refinement edits it, and it is read back
from the previous version's ``src/content.ts``, so a rebuild starts from exactly what the person saw.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from daemon.generators import page_kinds
from daemon.generators.page_kinds import HEADINGS, SECTION_ORDER, Kind

SCHEMA = 2
ACCENTS = ("blue", "emerald", "violet", "rose", "amber", "teal", "indigo", "orange")
FONTS = ("sans", "serif", "mono")
Model = dict[str, Any]

_FILLER = {"a", "an", "the", "my", "our", "me", "us", "please", "build", "create", "make", "generate",
           "design", "write", "simple", "modern", "new", "nice", "beautiful", "landing", "page", "website",
           "site", "web", "one", "single", "for", "of", "to", "with", "app", "application", "homepage", "i",
           "want", "need", "small", "local", "clean", "about"}
_NAME_RE = re.compile(
    r"\b(?:called|named|titled|rename(?:d)?(?: it)? to)\s+[\"“']?([A-Za-z0-9][^\"”'.,!?;:\n]{0,48})", re.I)
_SUBJECT_RE = re.compile(r"\bfor\s+(?:a|an|the|my|our)?\s*([A-Za-z0-9][A-Za-z0-9 '&-]{1,60}?)"
                         r"(?=\s*[,.!?;:]|\s+(?:with|that|which|where|who|to|and|in|featuring)\b|\s*$)", re.I)
# Where the description of the page starts: a name never spans these ("a bakery page with a menu").
_DETAILS_RE = re.compile(r"[,.;:!?]|\s(?:with|that|which|where|featuring|including|showing|and)\s", re.I)


def project_title(text: str) -> str:
    """The business's name: an explicit one ("called X"), else the subject ("for a X"), else the prompt's head words."""
    m = _NAME_RE.search(text) or _SUBJECT_RE.search(text)
    if m:
        title = clean_title(m.group(1))
        if title:
            return title
    head = _DETAILS_RE.split(" " + text + " ", maxsplit=1)[0]
    words = [w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9'&-]*", head) if w.lower() not in _FILLER]
    return clean_title(" ".join(words[:4])) or "My Project"


def clean_title(raw: str) -> str:
    """Title-case at most five words, dropping leading articles and trailing filler words."""
    words = raw.strip().split()
    while words and words[0].lower() in {"a", "an", "the", "my", "our"}:
        words = words[1:]
    words = words[:5]
    while words and words[-1].lower() in _FILLER:
        words = words[:-1]
    return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in words)[:60]


def new_model(name: str, kind: Kind, sections: list[str]) -> Model:
    """A fresh page for ``name`` of ``kind`` with ``sections`` (the kind's own when empty) and a contact section."""
    chosen = [s for s in SECTION_ORDER if s in (*(sections or kind.sections), "contact")]
    return {
        "schema": SCHEMA,
        "kind": kind.key,
        "title": name,
        "headline": kind.headline.format(name=name),
        "subheadline": kind.subheadline.format(name=name),
        "tagline": kind.tagline,
        "cta": kind.cta,
        "ctaTarget": kind.cta_to,
        "accent": kind.accent,
        "dark": False,
        "font": "sans",
        "contact": {"email": "", "phone": "", "address": ""},
        "sections": [make_section(s, kind, name) for s in chosen],
    }


def make_section(section: str, kind: Kind, name: str) -> dict[str, Any]:
    """One section with the heading, intro and items that fit ``kind``."""
    items = kind.items.get(section) or page_kinds.GENERIC_ITEMS[section]
    intro = kind.intros.get(section) or page_kinds.GENERIC_INTROS[section]
    return {
        "id": section,
        "kind": section,
        "heading": kind.headings.get(section, HEADINGS[section]),
        "intro": intro.format(name=name),
        "items": [{"title": t, "meta": m, "text": x.format(name=name)} for t, m, x in items],
    }


def section_kinds(model: Model) -> list[str]:
    """The kinds of the model's sections, in page order."""
    return [s["kind"] for s in model["sections"]]


def insert_section(model: Model, section: dict[str, Any]) -> None:
    """Put ``section`` where it naturally belongs: before the first section that comes after it in SECTION_ORDER."""
    rank = SECTION_ORDER.index(section["kind"])
    sections = model["sections"]
    at = next((i for i, s in enumerate(sections) if SECTION_ORDER.index(s["kind"]) > rank), len(sections))
    sections.insert(at, section)


def from_legacy(content: dict[str, Any]) -> Model:
    """A model from the first template's content (title, hero, updates); what was shown stays, prompts go.

    That template printed the prompt as the hero text and each refinement's prompt in the footer; the
    kind's own sub-headline replaces the one and the other is dropped.
    """
    title = str(content.get("title") or "My Project")
    kind = page_kinds.kind_for(f"{title} {content.get('hero', '')}")
    model = new_model(title, kind, [])
    model["headline"] = title  # the old page's big heading was the title
    for key in ("tagline", "cta"):
        if isinstance(content.get(key), str) and content[key]:
            model[key] = content[key]
    if content.get("accent") in ACCENTS:
        model["accent"] = content["accent"]
    model["dark"] = bool(content.get("dark"))
    sections = [s for s in content.get("sections", []) if isinstance(s, dict) and s.get("kind") in SECTION_ORDER]
    model["sections"] = [
        {"id": s["kind"], "kind": s["kind"], "heading": str(s.get("heading") or HEADINGS[s["kind"]]),
         "intro": str(s.get("intro", "")),
         "items": [{"title": str(i.get("title", "")), "meta": str(i.get("meta", "")), "text": str(i.get("text", ""))}
                   for i in s.get("items", []) if isinstance(i, dict)]}
        for s in sections]
    return model


def is_model(data: dict[str, Any]) -> bool:
    """Whether ``data`` is a page model of this schema (not the first template's content)."""
    return data.get("schema") == SCHEMA and isinstance(data.get("sections"), list)


def copy_model(model: Model) -> Model:
    """A deep copy to edit."""
    return copy.deepcopy(model)


# The favicon: the name's initial on a rounded square, so every preview's tab is told apart.
_FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
            '<rect width="64" height="64" rx="14" fill="#0f172a"/>'
            '<text x="32" y="44" font-family="system-ui, sans-serif" font-size="36" font-weight="700" '
            'text-anchor="middle" fill="#ffffff">{letter}</text></svg>\n')


def favicon_svg(model: Model) -> str:
    """``public/favicon.svg`` for the model (depends on the name's first letter only)."""
    letter = next((c for c in str(model.get("title", "")) if c.isalnum() and c.isascii()), "P").upper()
    return _FAVICON.format(letter=letter)
