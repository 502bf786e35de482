"""The template generator follows real refinement prompts: each one changes what it asks for and nothing else.

The table is tests/support/template_prompts.py; tests/integration/generators/test_template_render.py checks
the same rows on the page the real App.tsx renders.
"""

from __future__ import annotations

import json

import pytest

from daemon.core.contract import apply_contract
from daemon.generators import GenerationRequest, TemplateGenerator
from daemon.generators.page_edits import parse
from daemon.generators.page_kinds import GENERIC, KINDS, SECTION_ORDER, Kind
from daemon.generators.page_model import make_section, new_model
from daemon.generators.template import initial_model
from daemon.generators.template_app import CONTENT_HEADER, CONTENT_PATH, FAVICON_PATH, LEGACY_HEADER, parse_content_ts
from tests.support.template_prompts import BAKERY, CASES, Case, model_changes


def _project(prompt: str) -> dict[str, str]:
    result = TemplateGenerator().generate(GenerationRequest(prompt=prompt), lambda _line: None)
    return apply_contract({}, result.contract)


def _refine(base: dict[str, str], prompt: str) -> tuple[dict[str, str], set[str], list[str]]:
    lines: list[str] = []
    result = TemplateGenerator().generate(GenerationRequest(prompt=prompt, base_files=base), lines.append)
    return apply_contract(base, result.contract), set(result.contract.files), lines


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.prompt for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.prompt[:50] for case in CASES])
def test_refinement_changes_what_the_prompt_asks_and_nothing_else(case: Case) -> None:
    base = _project(case.base)
    before = parse_content_ts(base[CONTENT_PATH])
    after_files, delta, lines = _refine(base, case.prompt)
    after = parse_content_ts(after_files[CONTENT_PATH])
    assert before is not None and after is not None
    assert model_changes(before, after) == set(case.changes), [line for line in lines if "edit" in line]
    assert case.check(after), json.dumps(after, indent=1)
    # The prompt is an instruction, never page text; the files outside the model stay as they were.
    assert case.prompt not in after_files[CONTENT_PATH]
    assert {p for p in after_files if after_files[p] != base.get(p)} <= {CONTENT_PATH, FAVICON_PATH, "index.html"}
    assert delta <= {CONTENT_PATH, FAVICON_PATH, "index.html"}
    if "title" not in case.changes:
        assert delta == {CONTENT_PATH}
    # The same prompt on the same base gives the same page.
    assert _refine(base, case.prompt)[0] == after_files


def test_a_rename_updates_the_title_tag_and_the_favicon() -> None:
    base = _project(BAKERY)
    after, delta, _ = _refine(base, "Rename the business to Crumb & Co")
    assert delta == {CONTENT_PATH, FAVICON_PATH, "index.html"}
    assert "<title>Crumb &amp; Co</title>" in after["index.html"]
    assert ">C</text>" in after[FAVICON_PATH] and ">B</text>" in base[FAVICON_PATH]


def test_an_unknown_request_is_logged_not_printed() -> None:
    base = _project(BAKERY)
    after, delta, lines = _refine(base, "Make it pop")
    assert after == base and delta == {CONTENT_PATH}
    assert any("did not understand 'Make it pop'" in line for line in lines)


def test_the_first_prompt_gives_a_sensible_bakery_page() -> None:
    """The issue's first prompt: a bakery, named sensibly, with exactly the sections asked for."""
    model = initial_model(BAKERY)
    assert model["kind"] == "bakery" and model["title"] == "Bakery"
    assert [s["kind"] for s in model["sections"]] == ["menu", "hours", "contact"]
    assert "menu" not in model["headline"].lower() and "opening" not in model["headline"].lower()
    text = json.dumps(model)
    assert "SSO" not in text and "landing page" not in text.lower()
    assert "sourdough" in text.lower()


@pytest.mark.parametrize(("prompt", "kind"), [
    ("A bakery landing page with a menu", "bakery"),
    ("Website for my coffee shop", "cafe"),
    ("A salon booking app", "salon"),
    ("landing page for a CRM startup", "software"),
    ("Portfolio for a wedding photographer", "photography"),
    ("A dentist in Leeds", "clinic"),
    ("Our florist shop", "shop"),
    ("a site about origami", "generic"),
])
def test_the_business_kind_comes_from_the_prompt(prompt: str, kind: str) -> None:
    assert initial_model(prompt)["kind"] == kind


def test_first_prompt_settings_apply_but_its_words_stay_out_of_the_page() -> None:
    model = initial_model('A cafe called Bean There, dark theme, with the headline "Coffee worth crossing town for"')
    assert model["title"] == "Bean There" and model["dark"] is True
    assert model["headline"] == "Coffee worth crossing town for"
    assert "dark theme" not in json.dumps(model)


def test_a_page_from_the_first_template_is_upgraded_on_refine() -> None:
    """The old content (title, hero = the prompt, updates = prompts) becomes a model; its app is replaced."""
    files = _project(BAKERY)
    old = {"title": "Bakery Menu And Opening", "tagline": "Made with care", "hero": "A bakery landing page with a menu",
           "cta": "Book now", "accent": "amber", "dark": False, "updates": ["Make it nice"],
           "sections": [{"id": "menu", "kind": "menu", "heading": "Menu", "intro": "x",
                         "items": [{"title": "Bread", "meta": "$5", "text": "Good"}]}]}
    files[CONTENT_PATH] = LEGACY_HEADER + json.dumps(old, indent=2) + "\n"
    files["src/App.tsx"] = "old app"
    after, delta, lines = _refine(files, "Make the headline say Fresh bread every morning")
    model = parse_content_ts(after[CONTENT_PATH])
    assert model is not None and model["headline"] == "Fresh bread every morning"
    assert model["title"] == "Bakery Menu And Opening" and model["cta"] == "Book now"
    assert [s["items"][0]["title"] for s in model["sections"]] == ["Bread"]
    assert "updates" not in model and "A bakery landing page" not in after[CONTENT_PATH]
    assert "src/App.tsx" in delta and after["src/App.tsx"] != "old app"
    assert after[CONTENT_PATH].startswith(CONTENT_HEADER)
    assert any("upgrading" in line for line in lines)


def test_parse_reports_what_it_did_not_understand() -> None:
    parsed = parse("Add a gallery. Make it feel more premium.")
    assert [(e.op, e.field) for e in parsed.edits] == [("add_section", "gallery")]
    assert parsed.ignored == ("Make it feel more premium",)


@pytest.mark.parametrize("kind", [k for k in (*KINDS, GENERIC) if k.key != "software"], ids=lambda k: k.key)
def test_every_section_of_a_trade_reads_like_that_trade(kind: Kind) -> None:
    """No bakery gets a software pricing table: only the software kind talks plans, SSO or SLAs."""
    name = "Test Co"
    for section in SECTION_ORDER:
        text = json.dumps(make_section(section, kind, name))
        for word in ("SSO", "SLA", "/mo\"", "free trial", "integrations", "encrypted"):
            if kind.key == "fitness" and word == "/mo\"":
                continue  # a gym's unlimited membership is monthly
            assert word not in text, (kind.key, section, word)
    assert set(kind.sections) <= set(SECTION_ORDER) and set(kind.items) <= set(SECTION_ORDER)
    everything = [make_section(s, kind, name) for s in SECTION_ORDER] + [new_model(name, kind, [])]
    assert "{name}" not in json.dumps(everything)  # every placeholder filled
