"""The template's pages as the real app renders them: every prompt of the table through App.tsx, and a real build.

One pnpm install serves both: Vite builds a server-side entry of the
generated app, and one Node process renders the before and after model of every row of
tests/support/template_prompts.py with react-dom/server. Then the quick try's rebuild is built for real.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core.contract import apply_contract
from daemon.generators import GenerationRequest, make_generator
from daemon.generators.template_app import CONTENT_PATH, parse_content_ts
from daemon.project.workspace import materialize, read_tree
from daemon.render.browser import Browser
from tests.support.template_prompts import BAKERY, CASES, Case

pytestmark = pytest.mark.pnpm

PNPM = Path(__file__).resolve().parents[3] / ".tools" / "node_modules" / ".bin" / "pnpm"
ENTRY = """\
import { renderToStaticMarkup } from 'react-dom/server'
import App from './App'
import type { SiteContent } from './site'

export function render(content: SiteContent): string {
  return renderToStaticMarkup(<App content={content} />)
}
"""
RENDER_ALL = """\
import { readFileSync } from 'node:fs'
import { render } from './dist-ssr/entry-server.js'
const models = JSON.parse(readFileSync(0, 'utf8'))
process.stdout.write(JSON.stringify(models.map((m) => render(m))))
"""


def _pnpm(cwd: Path, *args: str) -> str:
    proc = subprocess.run([str(PNPM), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CI": "1"}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"pnpm {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _generate(prompt: str, base: dict[str, str] | None = None) -> dict[str, str]:
    result = make_generator("template").generate(GenerationRequest(prompt, base_files=base), lambda _l: None)
    return apply_contract(base or {}, result.contract)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bakery's generated project, installed once."""
    assert PNPM.exists(), f"pnpm is expected at {PNPM}"
    ws = tmp_path_factory.mktemp("bakery")
    materialize(ws, _generate(BAKERY))
    # A store of its own, like test_gen_template_pnpm's: the shared one may be pruned by a concurrent test.
    _pnpm(ws, "install", "--no-frozen-lockfile", "--store-dir", str(tmp_path_factory.mktemp("store")))
    yield ws


def _render_all(ws: Path, models: list[dict[str, object]]) -> list[str]:
    (ws / "src" / "entry-server.tsx").write_text(ENTRY)
    (ws / "render-all.mjs").write_text(RENDER_ALL)
    _pnpm(ws, "exec", "vite", "build", "--ssr", "src/entry-server.tsx", "--outDir", "dist-ssr")
    proc = subprocess.run(["node", "render-all.mjs"], cwd=ws, input=json.dumps(models), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages: list[str] = json.loads(proc.stdout)
    return pages


def _sections_html(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([a-z]+)"[^>]*>(.*?)</section>', html))


def _section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)"', html)


def test_every_prompt_of_the_table_shows_on_the_rendered_page(installed: Path) -> None:
    pairs: list[tuple[Case, dict[str, Any], dict[str, Any]]] = []
    bases: dict[str, dict[str, str]] = {}
    for case in CASES:
        base = bases.setdefault(case.base, _generate(case.base))
        before, after = (parse_content_ts(f[CONTENT_PATH]) for f in (base, _generate(case.prompt, base)))
        assert before is not None and after is not None
        pairs.append((case, before, after))
    pages = _render_all(installed, [m for _, before, after in pairs for m in (before, after)])
    for i, (case, before, after) in enumerate(pairs):
        html_before, html_after = pages[2 * i], pages[2 * i + 1]
        where = f"{case.prompt!r}"
        for text in case.shows:
            assert text in html_after, f"{where}: {text!r} not on the page"
        for text in case.hides:
            assert text in html_before and text not in html_after, f"{where}: {text!r} still on the page"
        for text in case.absent:
            assert text not in html_after, f"{where}: {text!r} does not fit this page"
        # The page lays the sections out in the model's order, and prints the headline, never the prompt.
        assert _section_ids(html_after) == [s["id"] for s in after["sections"]], where
        assert case.prompt not in html_after, where
        if not case.changes:
            assert html_after == html_before, where
        else:
            assert html_after != html_before, where
        # Nothing else changed: every section the prompt did not touch renders exactly as before (unless the
        # change is page-wide: theme, colour, font, or the name that sections mention).
        if not case.changes & {"accent", "dark", "font", "title"}:
            touched = {c.lstrip("+-") for c in case.changes} | ({"contact"} if any(
                c.startswith("contact.") for c in case.changes) else set())
            old, new = _sections_html(html_before), _sections_html(html_after)
            assert list(old) == [s["id"] for s in before["sections"]], where  # the comparison has its sections
            for sid in set(old) & set(new) - touched:
                assert old[sid] == new[sid], f"{where}: section {sid} changed"


def test_mobile_navigation_and_favicon_are_on_the_page(installed: Path) -> None:
    (page,) = _render_all(installed, [parse_content_ts(_generate(BAKERY)[CONTENT_PATH]) or {}])
    assert 'aria-controls="mobile-nav"' in page and 'aria-expanded="false"' in page and "md:hidden" in page
    assert '<nav aria-label="Sections" class="hidden gap-6 text-sm md:flex">' in page


def test_the_quick_try_rebuild_builds_and_shows_the_new_headline(installed: Path) -> None:
    """The README's quick try: a bakery, then "Make the headline say ..." built with vite, no install."""
    ws = installed
    _pnpm(ws, "build")
    assert "Baked from scratch" in "".join(p.read_text() for p in (ws / "dist" / "assets").glob("*.js"))
    assert (ws / "dist" / "favicon.svg").is_file()
    assert 'href="/favicon.svg"' in (ws / "dist" / "index.html").read_text()
    base = read_tree(ws, ["node_modules", "dist", "dist-ssr"])
    after = _generate("Make the headline say Fresh bread every morning", base)
    assert {p for p in after if after[p] != base.get(p)} == {CONTENT_PATH}
    materialize(ws, after)
    _pnpm(ws, "build")
    js = "".join(p.read_text() for p in (ws / "dist" / "assets").glob("*.js"))
    assert "Fresh bread every morning" in js and "Baked from scratch" not in js
    assert "Make the headline" not in js  # the prompt is not printed anywhere (the first template had a footer)


def _evaluate(browser: Browser, session: str, expression: str) -> Any:
    result = browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True}, session=session, deadline=time.monotonic() + 30)
    return result.get("result", {}).get("value")


def test_navigation_works_at_390_and_1280_px_in_chromium(installed: Path, tmp_path: Path) -> None:
    """The built bakery in real Chromium: on a phone the links sit behind a Menu button that opens them; on a
    desktop they are in the header and the button is hidden; the favicon loads."""
    ws = installed
    materialize(ws, _generate(BAKERY))
    _pnpm(ws, "build")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ws / "dist"))
    handler.log_message = lambda *_a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    visible = "(s) => [...document.querySelectorAll(s)].filter((e) => e.offsetParent !== null).length"
    try:
        with Browser("chromium", workdir=tmp_path) as browser:
            deadline = time.monotonic() + 60
            target = browser.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                   deadline=deadline)["sessionId"]
            for width, height, mobile in ((390, 844, True), (1280, 800, False)):
                browser.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                    "deviceScaleFactor": 1, "mobile": mobile},
                             session=session, deadline=deadline)
                browser.call("Page.navigate", {"url": url}, session=session, deadline=deadline)
                ready = "new Promise((r) => { const t = () => document.querySelector('h1') ? r(true) : " \
                        "setTimeout(t, 50); t() })"
                assert _evaluate(browser, session, ready) is True
                links = _evaluate(browser, session, f"({visible})('header nav:not(#mobile-nav) a')")
                button = _evaluate(browser, session, f"({visible})('button[aria-controls=mobile-nav]')")
                if mobile:
                    assert (links, button) == (0, 1)
                    _evaluate(browser, session, "document.querySelector('button[aria-controls=mobile-nav]').click()")
                    time.sleep(0.3)
                    opened = _evaluate(browser, session, f"({visible})('#mobile-nav a')")
                    assert opened == 3  # menu, opening hours, contact
                    assert _evaluate(browser, session, "document.documentElement.scrollWidth") <= 390
                else:
                    assert (links, button) == (3, 0)
                icon = _evaluate(browser, session, "fetch(document.querySelector('link[rel=icon]').href)"
                                                   ".then((r) => r.status + ' ' + r.headers.get('content-type'))")
                assert icon == "200 image/svg+xml"
    finally:
        server.shutdown()
        server.server_close()
