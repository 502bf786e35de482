"""The template generator: a valid, deterministic project from a prompt; refinements are minimal deltas."""

from __future__ import annotations

import json

import pytest

from daemon.core.contract import ContractLimits, apply_contract, validate_contract
from daemon.generators import GenerationError, GenerationRequest, make_generator
from daemon.generators.template import TemplateGenerator, project_title, requested_dependencies, slugify
from daemon.generators.template_app import CONTENT_PATH, DEPENDENCIES, DEV_DEPENDENCIES, parse_content_ts

PROMPT = "Build a landing page for a salon booking app with pricing, testimonials and an FAQ. Pink and dark."


def _generate(prompt: str, base: dict[str, str] | None = None) -> tuple[object, list[str]]:
    lines: list[str] = []
    result = TemplateGenerator().generate(GenerationRequest(prompt=prompt, base_files=base), lines.append)
    return result, lines


def _new_project(prompt: str = PROMPT) -> dict[str, str]:
    result = TemplateGenerator().generate(GenerationRequest(prompt=prompt), lambda _line: None)
    return apply_contract({}, result.contract)


def test_full_contract_validates_with_every_seed_field() -> None:
    gen = TemplateGenerator()
    data = gen.create(PROMPT)
    contract = validate_contract(data, allow_delta=False)
    assert not contract.is_delta
    for key in ("name", "slug", "description", "version", "author", "repository", "license", "tech_stack",
                "metadata", "templateFiles", "files"):
        assert key in data
    assert contract.meta["slug"] == "salon-booking"
    assert {"package.json", "index.html", "vite.config.ts", "tsconfig.json", "tsconfig.app.json",
            "tsconfig.node.json", "src/vite-env.d.ts", "src/main.tsx", "src/App.tsx", "src/index.css",
            CONTENT_PATH} <= set(contract.files)


def test_package_json_pins_exact_versions_and_builds_with_tsc() -> None:
    pkg = json.loads(_new_project()["package.json"])
    assert pkg["scripts"]["build"] == "tsc -b && vite build"
    assert pkg["dependencies"] == DEPENDENCIES and pkg["devDependencies"] == DEV_DEPENDENCIES
    for version in [*pkg["dependencies"].values(), *pkg["devDependencies"].values()]:
        assert version[0].isdigit(), version  # exact pins, no ranges
    assert "eslint" not in json.dumps(pkg)
    assert pkg["devDependencies"]["tailwindcss"] == "4.1.11"


def test_page_reflects_the_prompt() -> None:
    files = _new_project()
    content = parse_content_ts(files[CONTENT_PATH])
    assert content is not None
    assert content["title"] == "Salon Booking" and content["kind"] == "salon"
    # The prompt itself is never printed into the page: the hero is worded for the business's kind.
    assert "salon booking app" not in json.dumps(content).lower()
    assert [s["kind"] for s in content["sections"]] == ["testimonials", "pricing", "faq", "contact"]
    assert content["accent"] == "rose" and content["dark"] is True
    assert "<title>Salon Booking</title>" in files["index.html"]
    assert '<link rel="icon" type="image/svg+xml" href="/favicon.svg" />' in files["index.html"]
    assert files["public/favicon.svg"].startswith("<svg") and ">S</text>" in files["public/favicon.svg"]
    assert '@import "tailwindcss";' in files["src/index.css"]
    assert "vite/client" in files["src/vite-env.d.ts"]


def test_default_sections_when_no_keyword() -> None:
    content = parse_content_ts(_new_project("a site about origami")[CONTENT_PATH])
    assert content is not None
    assert content["title"] == "Origami"
    assert [s["kind"] for s in content["sections"]] == ["about", "features", "testimonials", "contact"]


def test_same_prompt_same_output_and_different_prompts_differ() -> None:
    assert _new_project() == _new_project()
    assert TemplateGenerator().create(PROMPT) == TemplateGenerator().create(PROMPT)
    assert _new_project()[CONTENT_PATH] != _new_project("A bakery called Crumb with a menu")[CONTENT_PATH]


def test_prompt_text_cannot_break_out_of_the_content_file() -> None:
    evil = 'for a shop called "x`; alert(1); //" </script> \u2028 with pricing'
    files = _new_project(evil)
    content = parse_content_ts(files[CONTENT_PATH])
    assert content is not None
    assert files[CONTENT_PATH].isascii()  # every prompt character is a JSON escape or plain ASCII
    assert files["index.html"].count("</script>") == 1  # only the page's own module script


def test_refinement_is_a_minimal_delta() -> None:
    base = _new_project()
    result, lines = _generate("Add a team section and make it green", base)
    contract = result.contract  # type: ignore[attr-defined]
    assert contract.is_delta
    assert set(contract.files) == {CONTENT_PATH}
    assert contract.deleted == ()
    after = apply_contract(base, contract)
    assert {p for p in after if after[p] != base.get(p)} == {CONTENT_PATH}
    content = parse_content_ts(after[CONTENT_PATH])
    assert content is not None
    assert "team" in [s["kind"] for s in content["sections"]]
    assert content["accent"] == "emerald"
    assert "updates" not in content and "Add a team" not in after[CONTENT_PATH]
    assert any("delta" in line for line in lines)


def test_refinement_removes_sections_and_renames() -> None:
    base = _new_project()
    result, _ = _generate("Remove the FAQ and rename it to Glow Studio", base)
    content = parse_content_ts(apply_contract(base, result.contract)[CONTENT_PATH])  # type: ignore[attr-defined]
    assert content is not None
    assert "faq" not in [s["kind"] for s in content["sections"]]
    assert content["title"] == "Glow Studio"


def test_refinement_touches_package_json_only_for_a_dependency() -> None:
    base = _new_project()
    result, _ = _generate("Please add the package zod@3.23.8 and add the dependency date-fns.", base)
    contract = result.contract  # type: ignore[attr-defined]
    assert set(contract.files) == {"package.json"}  # the page itself is unchanged
    pkg = json.loads(contract.files["package.json"])
    assert pkg["dependencies"] == {**DEPENDENCIES, "date-fns": "latest", "zod": "3.23.8"}
    assert pkg["devDependencies"] == DEV_DEPENDENCIES
    assert requested_dependencies("use the library @tanstack/react-query.") == {"@tanstack/react-query": "latest"}
    assert requested_dependencies("add a pricing section") == {}


def test_refinement_is_deterministic() -> None:
    base = _new_project()
    one, _ = _generate("add stats", base)
    two, _ = _generate("add stats", base)
    assert one.contract == two.contract  # type: ignore[attr-defined]


def test_refining_a_foreign_project_is_a_generation_error() -> None:
    with pytest.raises(GenerationError) as info:
        _generate("make it blue", {"package.json": "{}", "src/main.js": "x"})
    assert info.value.code == "generation_failed"
    assert CONTENT_PATH in info.value.message


def test_framework_hint_other_than_react_is_logged() -> None:
    lines: list[str] = []
    TemplateGenerator().generate(GenerationRequest(prompt="a blog", framework="vue"), lines.append)
    assert any("'vue'" in line for line in lines)


def test_output_respects_limits() -> None:
    gen = TemplateGenerator(limits=ContractLimits(max_files=3))
    with pytest.raises(Exception) as info:
        gen.generate(GenerationRequest(prompt="x"), lambda _line: None)
    assert getattr(info.value, "code", None) == "invalid_output"


@pytest.mark.parametrize(("prompt", "title"), [
    ("Create a website for my bakery called Crumb & Co", "Crumb & Co"),
    ("A portfolio for a wedding photographer, with a gallery", "Wedding Photographer"),
    ("todo list", "Todo List"),
    ("build me an app", "My Project"),
])
def test_titles(prompt: str, title: str) -> None:
    assert project_title(prompt) == title


def test_slugify() -> None:
    assert slugify("Crumb & Co!") == "crumb-co"
    assert slugify("***") == "project"
    assert len(slugify("x" * 100)) == 48


def test_registry_builds_each_backend_and_rejects_bad_settings() -> None:
    assert make_generator("template").name == "template"
    assert make_generator("command", command=["/bin/true"]).name == "command"
    assert make_generator("claude", model="sonnet").name == "claude"
    with pytest.raises(ValueError, match="unknown generator backend 'gpt'"):
        make_generator("gpt")
    with pytest.raises(ValueError, match=r"generator\.command"):
        make_generator("command")
    with pytest.raises(ValueError, match="timeout"):
        make_generator("template", timeout_s=0)
