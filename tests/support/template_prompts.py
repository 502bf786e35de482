"""Real-world refinement prompts for the template generator, each with the change it must make and nothing else.

Shared by the unit test (the page model) and the integration test (the page the real App.tsx renders).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Model = dict[str, Any]

BAKERY = "A bakery landing page with a menu, opening hours and a contact form"
SALON = "Build a landing page for a salon booking app with pricing, testimonials and an FAQ. Pink and dark."
SAAS = "A landing page for a project management app called Taskly with features and pricing"
YOGA = "A yoga studio with a class schedule"


@dataclass(frozen=True)
class Case:
    """A refinement of the page ``base`` built: what in the model changes (see ``model_changes``), a check of
    the new model, and texts the rendered page must show afterwards (``shows``), showed before and no longer
    shows (``hides``), or must never show (``absent``)."""

    prompt: str
    changes: frozenset[str]
    check: Callable[[Model], bool]
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()
    base: str = BAKERY
    absent: tuple[str, ...] = field(default=())  # never on the page, before or after (e.g. a software plan's "SSO")


def _kinds(m: Model) -> list[str]:
    return [s["kind"] for s in m["sections"]]


def _section(m: Model, kind: str) -> dict[str, Any]:
    return next(s for s in m["sections"] if s["kind"] == kind)


def _items(m: Model, kind: str) -> list[tuple[str, str]]:
    return [(i["title"], i["meta"]) for i in _section(m, kind)["items"]]


def c(prompt: str, changes: set[str], check: Callable[[Model], bool], *, shows: tuple[str, ...] = (),
      hides: tuple[str, ...] = (), base: str = BAKERY, absent: tuple[str, ...] = ()) -> Case:
    """One row of the table."""
    return Case(prompt, frozenset(changes), check, shows, hides, base, absent)


CASES: list[Case] = [
    # the headline and the other texts of the hero
    c("Make the headline say Fresh bread every morning", {"headline"},
      lambda m: m["headline"] == "Fresh bread every morning", shows=("Fresh bread every morning",),
      hides=("Baked from scratch, right here in town",)),
    c('Change the headline to "Warm bread, warmer people"', {"headline"},
      lambda m: m["headline"] == "Warm bread, warmer people", shows=("Warm bread, warmer people",)),
    c("headline: Open since 1984", {"headline"}, lambda m: m["headline"] == "Open since 1984",
      shows=("Open since 1984",)),
    c("Use 'Baked with love' as the headline", {"headline"}, lambda m: m["headline"] == "Baked with love",
      shows=("Baked with love",)),
    c("Change the title to Sunday Bakes", {"headline"}, lambda m: m["headline"] == "Sunday Bakes",
      shows=("Sunday Bakes",)),
    c("Make the headline say Green tea and pricing you'll love", {"headline"},
      lambda m: m["headline"] == "Green tea and pricing you'll love" and m["accent"] == "amber",
      shows=("Green tea and pricing you&#x27;ll love",)),
    c("Change the subtitle to Real bread, no shortcuts.", {"subheadline"},
      lambda m: m["subheadline"] == "Real bread, no shortcuts", shows=("Real bread, no shortcuts",)),
    c("Make the button say Order now", {"cta"}, lambda m: m["cta"] == "Order now", shows=("Order now",),
      hides=("See today&#x27;s bakes",)),
    c("Change the tagline to Family run since 1990", {"tagline"},
      lambda m: m["tagline"] == "Family run since 1990", shows=("Family run since 1990",)),
    # the business's name
    c("Rename the business to Crumb & Co", {"title"}, lambda m: m["title"] == "Crumb & Co",
      shows=("Crumb &amp; Co",)),
    c("Call it Rise Bakery", {"title"}, lambda m: m["title"] == "Rise Bakery", shows=("Rise Bakery",)),
    c("Our name is Golden Crust", {"title"}, lambda m: m["title"] == "Golden Crust", shows=("Golden Crust",)),
    # sections added, with content that fits a bakery
    c("Add a pricing section", {"+pricing"},
      lambda m: (_kinds(m) == ["menu", "pricing", "hours", "contact"]
                 and ("Loaf of the day", "$7") in _items(m, "pricing")),
      shows=("Prices", "Loaf of the day"), absent=("SSO",)),
    c("Add a testimonials section", {"+testimonials"}, lambda m: "testimonials" in _kinds(m),
      shows=("What people say",)),
    c("Add an FAQ", {"+faq"}, lambda m: "gluten-free" in str(_section(m, "faq")),
      shows=("Frequently asked questions",)),
    c("Add a gallery and a team section", {"+gallery", "+team"},
      lambda m: _kinds(m) == ["menu", "gallery", "team", "hours", "contact"], shows=("Gallery", "Meet the team")),
    c("Can you add some customer reviews?", {"+testimonials"}, lambda m: "testimonials" in _kinds(m),
      shows=("What people say",)),
    c("Add an about us section", {"+about"}, lambda m: _kinds(m)[0] == "about", shows=("About us",)),
    # sections removed
    c("Remove the opening hours", {"-hours"}, lambda m: _kinds(m) == ["menu", "contact"],
      hides=("Opening hours", "Tuesday to Friday")),
    c("Delete the menu", {"-menu"}, lambda m: _kinds(m) == ["hours", "contact"], hides=("Country sourdough",)),
    c("Get rid of the contact form", {"-contact"}, lambda m: _kinds(m) == ["menu", "hours"],
      hides=("Get in touch",)),
    # theme, colours, font
    c("Use a dark theme", {"dark"}, lambda m: m["dark"] is True, shows=("bg-slate-950",)),
    c("Switch to dark mode", {"dark"}, lambda m: m["dark"] is True, shows=("bg-slate-950",)),
    c("Make it green", {"accent"}, lambda m: m["accent"] == "emerald", shows=("bg-emerald-600",),
      hides=("bg-amber-700",)),
    c("Change the colours to purple", {"accent"}, lambda m: m["accent"] == "violet", shows=("text-violet-600",)),
    c("Use a serif font", {"font"}, lambda m: m["font"] == "serif", shows=("font-serif",)),
    # order
    c("Move the opening hours to the top", {"order"}, lambda m: _kinds(m) == ["hours", "menu", "contact"]),
    c("Put the contact section above the menu", {"order"}, lambda m: _kinds(m) == ["contact", "menu", "hours"]),
    c("Swap the menu and the opening hours", {"order"}, lambda m: _kinds(m) == ["hours", "menu", "contact"]),
    # what the business tells its visitors
    c("We're open 7am to 3pm, closed on Mondays", {"hours"},
      lambda m: _items(m, "hours") == [("Every day", "7:00 - 15:00"), ("Monday", "Closed")],
      shows=("7:00 - 15:00",), hides=("Tuesday to Friday",)),
    c("Opening hours: Monday to Saturday 8am-5pm", {"hours"},
      lambda m: _items(m, "hours") == [("Monday to Saturday", "8:00 - 17:00")], shows=("Monday to Saturday",)),
    c("Change the email to hello@crumb.co", {"contact.email"}, lambda m: m["contact"]["email"] == "hello@crumb.co",
      shows=("mailto:hello@crumb.co",)),
    c("Our phone number is 555-0143", {"contact.phone"}, lambda m: m["contact"]["phone"] == "555-0143",
      shows=("tel:5550143",)),
    c("Our address is 12 Mill Lane, Bristol", {"contact.address"},
      lambda m: m["contact"]["address"] == "12 Mill Lane, Bristol", shows=("12 Mill Lane, Bristol",)),
    c("Add a croissant for $3 to the menu", {"menu"}, lambda m: _items(m, "menu")[-1] == ("Croissant", "$3"),
      shows=("Croissant",)),
    c("Add Dark chocolate brownie for $4 to the menu", {"menu"},
      lambda m: _items(m, "menu")[-1] == ("Dark chocolate brownie", "$4") and m["dark"] is False,
      shows=("Dark chocolate brownie",)),
    c("Remove the cinnamon bun from the menu", {"menu"},
      lambda m: "Cinnamon bun" not in [t for t, _ in _items(m, "menu")], hides=("Cinnamon bun",)),
    c("Rename the menu section to Today's bakes", {"menu"}, lambda m: _section(m, "menu")["heading"] == "Today's bakes",
      shows=("Today&#x27;s bakes",)),
    c("Open weekdays 8-6 and weekends 9-1", {"hours"},
      lambda m: _items(m, "hours") == [("Monday to Friday", "8:00 - 18:00"), ("Saturday and Sunday", "9:00 - 13:00")],
      shows=("8:00 - 18:00", "9:00 - 13:00")),
    c("Move the contact section up", {"order"}, lambda m: _kinds(m) == ["menu", "contact", "hours"]),
    c('Rename "Opening hours" to When we are open', {"hours"},
      lambda m: _section(m, "hours")["heading"] == "When we are open", shows=("When we are open",),
      hides=("Opening hours",)),
    c("Change the call to action to Order a cake", {"cta"}, lambda m: m["cta"] == "Order a cake",
      shows=("Order a cake",)),
    # several edits in one prompt
    c("Add a pricing section and make it dark", {"+pricing", "dark"},
      lambda m: m["dark"] is True and "pricing" in _kinds(m)),
    c("Remove the hours, add a FAQ and use blue", {"-hours", "+faq", "accent"},
      lambda m: _kinds(m) == ["menu", "faq", "contact"] and m["accent"] == "blue"),
    c("Make the headline say Fresh bread, every morning and use a dark theme", {"headline", "dark"},
      lambda m: m["headline"] == "Fresh bread, every morning" and m["dark"] is True),
    c("Replace the opening hours with a gallery", {"-hours", "+gallery"},
      lambda m: _kinds(m) == ["menu", "gallery", "contact"], hides=("Opening hours",)),
    c('Please make the headline say "Fresh bread, every day." Then add a team section.', {"headline", "+team"},
      lambda m: m["headline"] == "Fresh bread, every day." and "team" in _kinds(m)),
    # other kinds of business
    c("Remove the testimonials", {"-testimonials"}, lambda m: "testimonials" not in _kinds(m), base=SALON,
      hides=("What people say",)),
    c("Move pricing to the bottom", {"order"}, lambda m: _kinds(m)[-1] == "pricing", base=SALON),
    c("Take out the pricing", {"-pricing"}, lambda m: "pricing" not in _kinds(m), base=SALON,
      hides=("Cut and style",)),
    c("Use a light theme", {"dark"}, lambda m: m["dark"] is False, base=SALON, hides=("bg-slate-950",)),
    c("Add a FAQ section and make the headline say Ship projects on time", {"+faq", "headline"},
      lambda m: m["headline"] == "Ship projects on time" and "faq" in _kinds(m), base=SAAS,
      shows=("Ship projects on time", "Is there a free trial?")),
    c("Make the buttons orange", {"accent"}, lambda m: m["accent"] == "orange", base=SAAS),
    c("Add stats", {"+stats"}, lambda m: "stats" in _kinds(m), base=SAAS, shows=("By the numbers",)),
    c("Add prices and a team section", {"+pricing", "+team"},
      lambda m: ("Drop-in", "$18") in _items(m, "pricing") and "team" in _kinds(m), base=YOGA,
      shows=("Drop-in",), absent=("SSO",)),
    c("Move the class schedule below the contact section", {"order"},
      lambda m: _kinds(m) == ["contact", "schedule"], base=YOGA),
    c("Make it purple and use a serif font", {"accent", "font"},
      lambda m: m["accent"] == "violet" and m["font"] == "serif", base=YOGA),
    # nothing the template understands: nothing changes
    c("Make it pop", set(), lambda m: True),
]


def model_changes(before: Model, after: Model) -> set[str]:
    """What differs between two models: top-level keys, ``contact.<field>``, ``+kind``/``-kind`` for sections
    added or removed, a kind whose section content changed, and ``order`` when kept sections moved."""
    out = {k for k in set(before) | set(after) if k not in ("sections", "contact") and before.get(k) != after.get(k)}
    for key in set(before.get("contact", {})) | set(after.get("contact", {})):
        if before["contact"].get(key) != after["contact"].get(key):
            out.add(f"contact.{key}")
    kb, ka = _kinds(before), _kinds(after)
    out |= {f"-{k}" for k in kb if k not in ka} | {f"+{k}" for k in ka if k not in kb}
    kept_b, kept_a = [k for k in kb if k in ka], [k for k in ka if k in kb]
    if kept_b != kept_a:
        out.add("order")
    out |= {k for k in kept_b if _section(before, k) != _section(after, k)}
    return out
