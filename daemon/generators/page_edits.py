"""What a refinement prompt asks for, as structured edits of the page model, and how they are applied.

Long because it holds the grammar of what people type ("make the headline say ...", "remove the
testimonials", "move pricing above the menu", "we're open 7am to 3pm") as one rule per kind of edit;
each rule is a few regular expressions and the lines that turn a match into an edit.

A prompt is split into clauses (sentences, "then", "and" before a verb); each clause is matched by the
first rule that claims it, so a headline's own words never turn into a colour or a section. A clause
no rule claims changes nothing and is reported back, never printed into the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from daemon.generators import page_kinds, page_model
from daemon.generators.page_kinds import SECTION_ORDER
from daemon.generators.page_model import Model

# Words that name each section in a prompt (longest first where one contains another).
SECTION_WORDS: dict[str, tuple[str, ...]] = {
    "about": ("about us", "about section", "about page", "our story", "about"),
    "features": ("features", "feature", "benefits", "why choose us"),
    "services": ("services", "service", "offerings", "treatments"),
    "menu": ("food menu", "drinks menu", "menu", "dishes"),
    "schedule": ("class schedule", "schedule", "timetable", "classes", "programme", "program", "agenda"),
    "gallery": ("gallery", "portfolio", "photos", "pictures", "images", "selected work"),
    "stats": ("statistics", "stats", "numbers", "metrics"),
    "team": ("team", "staff", "founders", "bakers", "stylists", "coaches"),
    "testimonials": ("testimonials", "testimonial", "reviews", "review", "quotes"),
    "pricing": ("price list", "pricing", "prices", "price", "plans", "rates", "packages", "tiers"),
    "hours": ("opening hours", "opening times", "business hours", "hours"),
    "faq": ("faqs", "faq", "q&a", "questions"),
    "contact": ("contact form", "contact details", "contact", "booking form", "booking", "reservations",
                "get in touch"),
}
COLOUR_WORDS = {
    "blue": "blue", "navy": "blue", "sky": "blue", "green": "emerald", "emerald": "emerald", "mint": "emerald",
    "lime": "emerald", "purple": "violet", "violet": "violet", "lavender": "violet", "lilac": "violet",
    "red": "rose", "pink": "rose", "rose": "rose", "magenta": "rose", "yellow": "amber", "gold": "amber",
    "golden": "amber", "amber": "amber", "brown": "amber", "teal": "teal", "turquoise": "teal", "cyan": "teal",
    "indigo": "indigo", "orange": "orange", "coral": "orange", "peach": "orange",
}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_VERBS = (r"add|remove|delete|drop|hide|make|change|set|use|put|move|rename|call|switch|replace|include|show|"
          r"swap|update|turn|give|get rid|take|we(?:'re| are)|it(?:'s| is)|also|please")
_SPLIT_RE = re.compile(rf"(?<=[.!?])\s+|\s*;\s*|\s+then\s+|,?\s+and\s+(?={_VERBS}\b)|,\s+(?=(?:{_VERBS})\b)", re.I)
_FIRST_SPLIT_RE = re.compile(rf"{_SPLIT_RE.pattern}|,\s*(?:with\s+)?|\s+with\s+", re.I)
_QUOTE_RE = re.compile(r"[\"“”]([^\"“”\n]{1,200})[\"“”]|(?<![A-Za-z])'([^'\n]{1,200})'(?![A-Za-z])")

_TEXT_FIELDS = {
    "headline": r"(?:main\s+|hero\s+|big\s+|page\s+|top\s+)?(?:headline|heading|title|h1)|hero(?:\s+text)?",
    "subheadline": r"sub-?headline|sub-?heading|sub-?title|strapline|hero\s+description|description|intro(?:\s+text)?",
    "tagline": r"tagline|slogan|eyebrow",
    "cta": r"(?:main\s+|hero\s+)?(?:button(?:\s+text|\s+label)?|call\s+to\s+action|cta)",
}
_SAY = r"(?:to\s+say|to\s+read|say|says|read|reads|to|into|as|be|is|should\s+(?:say|read|be)|:|=)"
_SETTER = r"(?:(?:please\s+)?(?:make|change|set|update|replace|switch|edit|reword|rewrite)\s+)?(?:the\s+|our\s+)?"
_NAME_SET_RES = (
    re.compile(r"^(?:please\s+)?rename\s+(?:the\s+|our\s+)?(?:business|company|shop|store|site|website|page|"
               r"brand|project|it|us|studio|bakery|salon|cafe|restaurant|practice)?\s*(?:to|as)\s+(?P<v>.+)$", re.I),
    re.compile(r"^(?:please\s+)?(?:call|name)\s+(?:it|the\s+(?:business|site|shop|company|brand|page))\s+"
               r"(?P<v>.+)$", re.I),
    re.compile(rf"^{_SETTER}(?:business|company|shop|store|site|brand|studio)?\s*name\s+{_SAY}\s+(?P<v>.+)$", re.I),
    re.compile(r"^(?:the\s+|our\s+)?(?:business|company|shop|store|site|brand|studio|bakery|salon|cafe|"
               r"restaurant|place)\s+is\s+(?:now\s+)?(?:called|named)\s+(?P<v>.+)$", re.I),
    re.compile(r"^(?:our|the)\s+name\s+is\s+(?P<v>.+)$", re.I),
    re.compile(r"^(?:it|we)(?:'s|'re| is| are)\s+(?:now\s+)?(?:called|named)\s+(?P<v>.+)$", re.I),
)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE_RE = re.compile(r"\b(?:phone|telephone|tel|number|call\s+us)\b.*?(\+?\d[\d ()./-]{5,20}\d)", re.I)
_ADDRESS_RE = re.compile(r"\b(?:address|located|we(?:'re| are)\s+at|find\s+us\s+at)\b\s*(?:is|to|:|at)?\s*(?P<v>.+)$",
                         re.I)
_TIME = r"\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?|noon|midnight"
_TIME_RANGE_RE = re.compile(rf"(?P<a>{_TIME})\s*(?:-|–|to|until|till)\s*(?P<b>{_TIME})", re.I)
_DAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?s?"
_DAY_RANGE_RE = re.compile(rf"(?P<a>{_DAY})\s*(?:-|–|to|through|until|till)\s*(?P<b>{_DAY})", re.I)
_CLOSED_RE = re.compile(rf"closed\s+(?:on\s+)?(?P<d>{_DAY}(?:\s*(?:and|,|&)\s*{_DAY})*)", re.I)
_DARK_RE = re.compile(r"\b(?:dark(?:er)?|night)\b(?=\s*(?:$|[,.!]|and\b|theme|mode|background|look|colou?r|"
                      r"scheme|style|version|design|palette|please))|\bblack\s+background", re.I)
_LIGHT_RE = re.compile(r"\b(?:light(?:er)?|bright(?:er)?)\b(?=\s*(?:$|[,.!]|and\b|theme|mode|background|look|"
                       r"colou?r\s+scheme|scheme|style|version|design|please))|\bwhite\s+background", re.I)
_FONT_RE = re.compile(r"\b(serif|sans(?:-?serif)?|mono(?:space)?|elegant|classic|typewriter|modern)\b[^.]*\b"
                      r"(?:font|fonts|type|typeface|typography|lettering)\b|\b(?:font|typeface|typography)\b[^.]*?\b"
                      r"(serif|sans(?:-?serif)?|mono(?:space)?|elegant|classic|typewriter|modern)\b", re.I)
_REMOVE_RE = re.compile(r"\b(?:remove|delete|drop|hide|without|get\s+rid\s+of|take\s+(?:out|away|off)|"
                        r"(?:do\s+not|don't|doesn't|no\s+longer)\s+(?:need|want|show)|no(?:\s+more)?|lose|cut)\b", re.I)
_MOVE_RE = re.compile(r"^(?:please\s+)?(?:move|put|place|show|display|bring)\s+(?:the\s+|our\s+)?(?P<what>.+?)\s+"
                      r"(?P<where>(?:one\s+)?(?:up|down|higher|lower)(?:\s+one)?|"
                      r"(?:to\s+the\s+|at\s+the\s+|on\s+)?(?:top|bottom|end|start|beginning|first|last)"
                      r"(?:\s+of\s+the\s+page)?|(?:above|below|before|after|under|over)\s+(?:the\s+)?.+)$", re.I)
_SWAP_RE = re.compile(r"^(?:please\s+)?swap\s+(?:the\s+)?(?P<a>.+?)\s+(?:and|with)\s+(?:the\s+)?(?P<b>.+)$", re.I)
_REPLACE_RE = re.compile(r"^(?:please\s+)?replace\s+(?:the\s+)?(?P<a>.+?)\s+with\s+(?:a\s+|an\s+|the\s+)?(?P<b>.+)$",
                         re.I)
_HEADING_TEXT_RE = re.compile(r"^(?:please\s+)?(?:rename|retitle|change|reword)\s+(?:the\s+)?\x00(?P<old>\d+)\x00"
                              r"(?:\s+(?:heading|section|title))?\s+(?:to|into|as)\s+(?P<v>.+)$", re.I)
_SECTION_HEADING_RE = re.compile(
    r"^(?:please\s+)?(?:rename|retitle|call|title|change|set)\s+(?:the\s+)?(?P<what>.+?)\s+"
    r"(?:section|heading|section\s+heading|section\s+title|title)\s+(?:to\s+|as\s+)?(?P<v>.+)$", re.I)
_ITEM_ADD_RE = re.compile(
    r"^(?:please\s+)?(?:add|put|list|include)\s+(?:a\s+|an\s+|the\s+|some\s+|our\s+)?(?P<item>.+?)"
    r"(?:\s*(?:\(|for|at|-|–|:|,)\s*(?P<price>(?:from\s+)?[$£€]\s?\d[\d.,]*|\d[\d.,]*\s?(?:dollars|euros|pounds))\)?)?"
    r"\s+(?:to|on|in)\s+(?:the\s+|our\s+)?(?P<section>menu|services|service\s+list|price\s+list|prices|pricing|team)"
    r"(?:\s+section)?$", re.I)
_ITEM_REMOVE_RE = re.compile(
    r"^(?:please\s+)?(?:remove|delete|drop|take)\s+(?:the\s+)?(?P<item>.+?)\s+(?:off|from)\s+(?:the\s+|our\s+)?"
    r"(?P<section>menu|services|price\s+list|prices|pricing|team)(?:\s+section)?$", re.I)
_ITEM_SECTION = {"menu": "menu", "services": "services", "service list": "services", "price list": "pricing",
                 "prices": "pricing", "pricing": "pricing", "team": "team"}


@dataclass(frozen=True)
class Edit:
    """One change to the page model: ``op`` with its arguments (see ``apply``)."""

    op: str  # set | contact | hours | add_section | remove_section | move_section | swap | heading | add_item | ...
    field: str = ""
    value: Any = None

    def describe(self) -> str:
        """A short human line for the build log."""
        parts = [self.op, self.field, "" if self.value is None else repr(self.value)]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Parsed:
    """The edits a prompt asks for, and the clauses that asked for nothing the template understands."""

    edits: tuple[Edit, ...]
    ignored: tuple[str, ...]


def parse(prompt: str, *, first: bool = False) -> Parsed:
    """Split ``prompt`` into clauses and turn each into edits (first rule that claims a clause wins).

    ``first``: a first prompt, which lists settings ("a cafe, dark theme, with the headline '...'"), so
    commas and "with" split clauses too.
    """
    quotes: list[str] = []

    def hold(m: re.Match[str]) -> str:
        quotes.append((m.group(1) or m.group(2) or "").strip())
        return f"\x00{len(quotes) - 1}\x00"

    text = _QUOTE_RE.sub(hold, " ".join(prompt.split()))
    edits: list[Edit] = []
    ignored: list[str] = []
    for raw in (_FIRST_SPLIT_RE if first else _SPLIT_RE).split(text):
        clause = raw.strip().strip(".!?,").strip()
        if not clause:
            continue
        found = _clause_edits(clause, quotes)
        if found:
            edits += found
        else:
            ignored.append(_unhold(clause, quotes))
    return Parsed(tuple(edits), tuple(ignored))


def _unhold(text: str, quotes: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: quotes[int(m.group(1))], text)


def _value(raw: str, quotes: list[str]) -> str:
    """The text a setter gives: its quoted part when quoted, else the words as typed (end punctuation cut)."""
    held = re.search(r"\x00(\d+)\x00", raw)
    if held:
        return " ".join(quotes[int(held.group(1))].split())
    value = " ".join(raw.split()).strip(" .!,;:")
    return value[:1].upper() + value[1:]


def _clause_edits(clause: str, quotes: list[str]) -> list[Edit]:
    for rule in (_section_heading, _text_field, _contact, _name, _hours, _move, _items, _sections, _look):
        found = rule(clause, quotes)
        if found:
            return found
    return []


def _section_of(text: str) -> str | None:
    """The section a phrase names ("the testimonials", "opening hours", "FAQ section")."""
    found = _sections_named(text)
    return found[0] if found else None


def _sections_named(text: str) -> list[str]:
    """Every section a phrase names, in the order it names them."""
    hits: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for section, words in SECTION_WORDS.items():
        for word in words:
            for m in re.finditer(rf"(?<![A-Za-z&]){re.escape(word)}(?![A-Za-z])", text, re.I):
                if any(a < m.end() and m.start() < b for a, b in taken):
                    continue
                if section == "about" and word == "about" and not re.search(r"\babout\s+(?:us|section|page)\b|"
                                                                            r"\ban?\s+about\b|\bthe\s+about\b",
                                                                            text, re.I):
                    continue
                taken.append((m.start(), m.end()))
                hits.append((m.start(), section))
    seen: list[str] = []
    for _, section in sorted(hits):
        if section not in seen:
            seen.append(section)
    return seen


def _section_heading(clause: str, quotes: list[str]) -> list[Edit]:
    m = _HEADING_TEXT_RE.match(clause)
    if m:  # 'rename "What people say" to Kind words': a heading named by its text
        return [Edit("heading_text", quotes[int(m.group("old"))], _value(m.group("v"), quotes))]
    m = _SECTION_HEADING_RE.match(clause)
    if not m:
        return []
    section = _section_of(m.group("what"))
    if section is None:
        return []
    return [Edit("heading", section, _value(m.group("v"), quotes))]


def _text_field(clause: str, quotes: list[str]) -> list[Edit]:
    for name, words in _TEXT_FIELDS.items():
        patterns = (
            rf"^{_SETTER}(?:{words})(?:\s+text)?\s+{_SAY}\s+(?P<v>.+)$",
            rf"^(?:please\s+)?use\s+(?P<v>.+?)\s+as\s+(?:the\s+)?(?:{words})$",
            rf"^(?:the\s+)?(?:{words})\s*(?::|=|-)\s*(?P<v>.+)$",
            rf"^(?:the\s+|a\s+)?(?:{words})\s+(?:saying\s+|that\s+says\s+|reading\s+)?(?P<v>\x00\d+\x00)$",
        )
        for pattern in patterns:
            m = re.match(pattern, clause, re.I)
            if m:
                return [Edit("set", name, _value(m.group("v"), quotes))]
    return []


def _name(clause: str, quotes: list[str]) -> list[Edit]:
    for pattern in _NAME_SET_RES:
        m = pattern.match(clause)
        if m:
            value = _value(m.group("v"), quotes)
            if "\x00" not in m.group("v"):
                value = page_model.clean_title(value) or value
            return [Edit("set", "title", value)]
    return []


def _contact(clause: str, quotes: list[str]) -> list[Edit]:
    text = _unhold(clause, quotes)
    edits = []
    email = _EMAIL_RE.search(text)
    if email and re.search(r"\b(?:e-?mail|mail|contact|reach)\b", text, re.I):
        edits.append(Edit("contact", "email", email.group(0)))
    phone = _PHONE_RE.search(text)
    if phone:
        edits.append(Edit("contact", "phone", " ".join(phone.group(1).split())))
    if not edits:
        address = _ADDRESS_RE.search(text)
        if address:
            edits.append(Edit("contact", "address", _value(address.group("v"), [])))
    return edits


def _hours(clause: str, quotes: list[str]) -> list[Edit]:
    text = _unhold(clause, quotes)
    if not re.search(r"\b(?:open|opening|hours|closed|close)\b", text, re.I):
        return []
    rows: list[list[str]] = []
    for part in re.split(r",\s*|\s+and\s+(?=" + _DAY + r"|week|every|daily)", text, flags=re.I):
        span = _TIME_RANGE_RE.search(part)
        if not span:
            continue
        rows.append([_days_label(part[:span.start()] + " " + part[span.end():]), _time_range(span)])
    for m in _CLOSED_RE.finditer(text):
        for day in re.split(r"\s*(?:and|,|&)\s*", m.group("d")):
            rows.append([_day_name(day), "Closed"])
    if not rows:
        return []
    return [Edit("hours", "", tuple((label, when) for label, when in rows))]


def _days_label(text: str) -> str:
    m = _DAY_RANGE_RE.search(text)
    if m:
        return f"{_day_name(m.group('a'))} to {_day_name(m.group('b'))}"
    if re.search(r"\bweekdays?\b", text, re.I):
        return "Monday to Friday"
    if re.search(r"\bweekends?\b", text, re.I):
        return "Saturday and Sunday"
    days = [_day_name(d) for d in re.findall(rf"\b{_DAY}\b", text, re.I)]
    return " and ".join(days) if days else "Every day"


def _day_name(word: str) -> str:
    w = word.lower()[:3]
    return next((d.capitalize() for d in _DAYS if d.startswith(w)), word.capitalize())


def _time_range(m: re.Match[str]) -> str:
    a, b = _clock(m.group("a")), _clock(m.group("b"))
    # "7 to 3" means 7:00 to 15:00: a closing hour before the opening one is in the afternoon.
    if b is not None and a is not None and b <= a and b < 12 * 60 and not re.search(r"am|a\.m", m.group("b"), re.I):
        b += 12 * 60
    return f"{_hhmm(a)} - {_hhmm(b)}" if a is not None and b is not None else m.group(0)


def _clock(raw: str) -> int | None:
    s = raw.lower().replace(" ", "").replace(".", ":").replace("a:m:", "am").replace("p:m:", "pm")
    if s == "noon":
        return 12 * 60
    if s == "midnight":
        return 24 * 60
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(am|pm)?", s)
    if not m:
        return None
    h, mins = int(m.group(1)), int(m.group(2) or 0)
    if m.group(3) == "pm" and h < 12:
        h += 12
    if m.group(3) == "am" and h == 12:
        h = 0
    return h * 60 + mins if h <= 24 and mins < 60 else None


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def _move(clause: str, quotes: list[str]) -> list[Edit]:
    m = _REPLACE_RE.match(clause)
    if m:
        a, b = _section_of(m.group("a")), _section_of(m.group("b"))
        if a and b and a != b:
            return [Edit("replace", a, b)]
    m = _SWAP_RE.match(clause)
    if m:
        a, b = _section_of(m.group("a")), _section_of(m.group("b"))
        if a and b and a != b:
            return [Edit("swap", a, b)]
    m = _MOVE_RE.match(clause)
    if not m:
        return []
    what = _section_of(m.group("what"))
    where = m.group("where").lower()
    if what is None:
        return []
    if re.match(r"(?:one\s+)?(?:up|higher)\b", where):
        return [Edit("move_section", what, "up")]
    if re.match(r"(?:one\s+)?(?:down|lower)\b", where):
        return [Edit("move_section", what, "down")]
    if re.search(r"\b(?:top|start|beginning|first)\b", where):
        return [Edit("move_section", what, "top")]
    if re.search(r"\b(?:bottom|end|last)\b", where):
        return [Edit("move_section", what, "bottom")]
    other = _section_of(re.sub(r"^\w+\s+", "", where))
    if other is None or other == what:
        return []
    before = re.match(r"(?:above|before|over)\b", where) is not None
    return [Edit("move_section", what, f"{'before' if before else 'after'}:{other}")]


def _items(clause: str, quotes: list[str]) -> list[Edit]:
    m = _ITEM_REMOVE_RE.match(clause)
    if m:
        return [Edit("remove_item", _ITEM_SECTION[m.group("section").lower()], _value(m.group("item"), quotes))]
    m = _ITEM_ADD_RE.match(clause)
    if not m or _section_of(m.group("item")):
        return []
    price = (m.group("price") or "").replace(" ", "")
    if price and price[0].isdigit():
        price = "$" + re.sub(r"[^\d.,]", "", price)
    item = _value(m.group("item"), quotes)
    return [Edit("add_item", _ITEM_SECTION[m.group("section").lower()], (item, price))]


def _sections(clause: str, quotes: list[str]) -> list[Edit]:
    named = _sections_named(_strip_held(clause))
    if not named:
        return []
    removal = _REMOVE_RE.search(clause)
    if removal:
        # "remove the FAQ and add a gallery": words after a later "add" are additions.
        add_at = re.search(r"\b(?:add|include|put\s+in|bring\s+back)\b", clause[removal.end():], re.I)
        cut = removal.end() + add_at.start() if add_at else len(clause)
        gone = _sections_named(_strip_held(clause[removal.end():cut]))
        added = _sections_named(_strip_held(clause[:removal.start()] + " " + clause[cut:]))
        return [Edit("remove_section", s) for s in gone] + [Edit("add_section", s) for s in added]
    return [Edit("add_section", s) for s in named]


def _strip_held(text: str) -> str:
    return re.sub(r"\x00\d+\x00", " ", text)


def _look(clause: str, quotes: list[str]) -> list[Edit]:
    text = _strip_held(clause)
    edits = []
    if _DARK_RE.search(text):
        edits.append(Edit("set", "dark", True))
    elif _LIGHT_RE.search(text):
        edits.append(Edit("set", "dark", False))
    font = _FONT_RE.search(text)
    if font:
        word = (font.group(1) or font.group(2)).lower()
        style = ("mono" if word.startswith(("mono", "type")) else
                 "serif" if word in ("serif", "elegant", "classic") else "sans")
        edits.append(Edit("set", "font", style))
    colours = [COLOUR_WORDS[w.lower()] for w in re.findall(r"[A-Za-z]+", text) if w.lower() in COLOUR_WORDS]
    if colours:
        edits.append(Edit("set", "accent", colours[-1]))
    return edits


def apply(model: Model, edits: tuple[Edit, ...] | list[Edit]) -> Model:
    """A copy of ``model`` with ``edits`` applied in order; what no edit names stays exactly as it was."""
    out = page_model.copy_model(model)
    kind = page_kinds.by_key(str(out.get("kind", "")))
    for e in edits:
        if e.op == "set":
            out[e.field] = e.value
        elif e.op == "contact":
            out.setdefault("contact", {})[e.field] = e.value
        elif e.op == "hours":
            hours = _ensure(out, "hours", kind)
            hours["items"] = [{"title": day, "meta": when, "text": ""} for day, when in e.value]
        elif e.op == "add_section":
            _ensure(out, e.field, kind)
        elif e.op == "remove_section":
            out["sections"] = [s for s in out["sections"] if s["kind"] != e.field]
        elif e.op == "move_section":
            _move_section(out, e.field, str(e.value), kind)
        elif e.op == "replace":
            _replace(out, e.field, str(e.value), kind)
        elif e.op == "swap":
            _swap(out, e.field, str(e.value))
        elif e.op == "heading":
            section = _find(out, e.field)
            if section is not None:
                section["heading"] = e.value
        elif e.op == "heading_text":
            for section in out["sections"]:
                if section["heading"].lower() == str(e.field).lower():
                    section["heading"] = e.value
        elif e.op == "add_item":
            name, price = e.value
            section = _ensure(out, e.field, kind)
            if not any(i["title"].lower() == name.lower() for i in section["items"]):
                section["items"].append({"title": name, "meta": price, "text": ""})
        elif e.op == "remove_item":
            section = _find(out, e.field)
            if section is not None:
                section["items"] = [i for i in section["items"] if e.value.lower() not in i["title"].lower()]
    return out


def _find(model: Model, kind: str) -> dict[str, Any] | None:
    return next((s for s in model["sections"] if s["kind"] == kind), None)


def _ensure(model: Model, kind_name: str, kind: page_kinds.Kind) -> dict[str, Any]:
    """The model's section of this kind, added in its natural place when missing."""
    found = _find(model, kind_name)
    if found is None:
        found = page_model.make_section(kind_name, kind, str(model.get("title", "")))
        page_model.insert_section(model, found)
    return found


def _replace(model: Model, old: str, new: str, kind: page_kinds.Kind) -> None:
    """``new`` takes ``old``'s place (or its natural one when ``old`` is not on the page)."""
    at = next((i for i, s in enumerate(model["sections"]) if s["kind"] == old), None)
    if _find(model, new) is not None or at is None:
        model["sections"] = [s for s in model["sections"] if s["kind"] != old]
        _ensure(model, new, kind)
        return
    model["sections"][at] = page_model.make_section(new, kind, str(model.get("title", "")))


def _move_section(model: Model, kind_name: str, where: str, kind: page_kinds.Kind) -> None:
    """Move a section (adding it first when the page has none) to the top, bottom, or before/after another."""
    section = _ensure(model, kind_name, kind)
    sections = [s for s in model["sections"] if s is not section]
    if where == "top":
        at = 0
    elif where == "bottom":
        at = len(sections)
    elif where in ("up", "down"):
        at = max(0, min(len(sections), model["sections"].index(section) + (-1 if where == "up" else 1)))
    else:
        rel, _, other = where.partition(":")
        idx = next((i for i, s in enumerate(sections) if s["kind"] == other), None)
        if idx is None:
            return
        at = idx if rel == "before" else idx + 1
    sections.insert(at, section)
    model["sections"] = sections


def _swap(model: Model, a: str, b: str) -> None:
    sections = model["sections"]
    ia = next((i for i, s in enumerate(sections) if s["kind"] == a), None)
    ib = next((i for i, s in enumerate(sections) if s["kind"] == b), None)
    if ia is not None and ib is not None:
        sections[ia], sections[ib] = sections[ib], sections[ia]


def sections_in(prompt: str) -> list[str]:
    """The sections a first prompt names, in page order (empty: it names none)."""
    named = set(_sections_named(prompt))
    return [s for s in SECTION_ORDER if s in named]


__all__ = ["Edit", "Parsed", "apply", "parse", "sections_in"]
