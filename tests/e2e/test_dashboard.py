"""The dashboard in real Chromium (Playwright for Python driving the system Chromium through `executable_path`),
against a real `previewd serve` holding versions built with real pnpm and render-checked.

Screenshots of every page at 1280 and 390 px go to artifacts/dashboard/ (git-ignored; CI keeps it as an artefact),
and every page passes axe-core (the copy `make setup` installs in .tools) with no serious or critical violation.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from daemon.ui.access import hash_password
from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support import wait_until
from tests.support.live import LiveDaemon

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "dashboard"
AXE = REPO / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "dashboard test password"
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}

# Blue or red pages by prompt; "slow" builds print a line every 0.4 s so the log can be watched arriving; "broken"
# builds fail with a coloured error.
PAGES = '''
p = req["prompt"]
colour = "#c00" if "red" in p else "#00c"
slow = "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.4; done && " if "slow" in p else ""
build = slow + "mkdir -p dist && cp index.html dist/"
if "broken" in p:  # a long coloured log with a tsc-like error near its end, then a failing exit
    build = ("i=0; while [ $i -lt 120 ]; do i=$((i+1)); echo step-$i; done; "
             "echo '\033[36mvite\033[39m building'; echo 'src/App.tsx(3,7): \033[91merror\033[0m TS2304: "
             "Cannot find name foo'; echo after-the-error; exit 2")
files = {"index.html": "<html><body><h1 style='color:" + colour + "'>" + p + "</h1>"
         "<div style='height:300px;background:" + colour + "'></div></body></html>"}
'''


@dataclass
class Site:
    d: LiveDaemon
    v1: str
    v2: str
    v3: str  # a failed rebuild after v2: the live site stays v2


def _build(d: LiveDaemon, project: str, prompt: str, new: bool = True, **params: str) -> str:
    path = "/build-preview-for-new-project" if new else "/rebuild-preview"
    r = d.post(path, {"userId": "u", "projectId": project, "prompt": prompt}, **params)
    assert r.status_code in (200, 202), r.text
    return str(r.json()["versionId"])


def _rendered(d: LiveDaemon, vid: str) -> dict[str, Any]:
    def checked() -> dict[str, Any] | None:
        v: dict[str, Any] = d.get(f"/versions/{vid}").json()
        return v if v["renderStatus"] else None

    return wait_until(checked, 120, interval=0.2, what=f"{vid} being render-checked")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    extra = f'[ui]\npassword_hash = "{hash_password(PASSWORD)}"\n'
    d = LiveDaemon(tmp, generator_config(write_generator(tmp, PAGES), extra)).start()
    try:
        v1 = _build(d, "site", "Blue page")
        v2 = _build(d, "site", "A red page", new=False)
        for vid in (v1, v2):
            assert _rendered(d, vid)["renderStatus"] == "ok"
        v3 = _build(d, "site", "A broken red page", new=False)
        assert d.wait_status(v3, ("deployed", "failed"))["status"] == "failed"
        yield Site(d, v1, v2, v3)
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/install-system-deps.sh installs it)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium)
        yield b
        b.close()


# WCAG 2 contrast of every element that holds text, against the first opaque background behind it.
LOW_CONTRAST_JS = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
                     if (c.length === 3 || c[3] > 0.9) return c.slice(0, 3); } return [255, 255, 255]; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || !el.offsetParent) continue;
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    const [a, b] = [lum(rgb(st.color).slice(0, 3)), lum(bg(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.5 && +st.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      bad.push(el.tagName + ' ' + el.textContent.trim().slice(0, 40) + ' ' + ratio.toFixed(2));
    }
  }
  return bad;
}"""


class Watch:
    """Console errors, page errors, failed requests and HTTP errors seen by one page."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error"
                else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: None if _left_behind(r.url, r.failure) else
                self.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400
                else None)


def _left_behind(url: str, failure: str | None) -> bool:
    """The favicon a page was still fetching when a click navigated away: Chromium aborts it (not a fault)."""
    return url.endswith("/favicon.svg") and failure == "net::ERR_ABORTED"


def signed_in(browser: Browser, d: LiveDaemon, size: str) -> BrowserContext:
    ctx = browser.new_context(viewport=WIDTHS[size], base_url=d.base, timezone_id="Asia/Tokyo")
    page = ctx.new_page()
    page.goto("/ui/sign-in")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/?$"))
    page.close()
    return ctx


@pytest.fixture(scope="module")
def contexts(browser: Browser, site: Site) -> Iterator[dict[str, BrowserContext]]:
    """One signed-in context per width, shared by the tests that only read pages (a sign-in costs a password
    hash and three page loads)."""
    made = {size: signed_in(browser, site.d, size) for size in WIDTHS}
    yield made
    for ctx in made.values():
        ctx.close()


def shoot(page: Page, name: str, size: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)


def test_signed_out_visitor_is_sent_to_sign_in(browser: Browser, site: Site) -> None:
    ctx = browser.new_context(base_url=site.d.base)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto("/ui/projects")
    assert "/ui/sign-in?next=" in page.url
    for size in WIDTHS:
        page.set_viewport_size(WIDTHS[size])
        shoot(page, "sign-in", size)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "that password or token is not right"
    watch.problems = [p for p in watch.problems if "HTTP 401" not in p and "401 (Unauthorized)" not in p]
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/projects$"))
    assert page.get_by_role("link", name=re.compile("site")).count() >= 1
    assert watch.problems == []
    ctx.close()


def axe_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now. The script comes in as the page's
    init script (the pages' CSP refuses inline scripts, rightly; an init script is the browser's own)."""
    assert page.evaluate("() => !!window.axe"), "add the page's init script first"
    found = page.evaluate("""async () => {
      const r = await axe.run(document, {resultTypes: ['violations']});
      return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
    }""")
    return list(found)


# Pages whose phone layout is its own (cards, one-column diff, narrow chart, stacked production card): axe runs on
# these at 390 px too; every page is checked at 1280 px (axe's rules hardly depend on the width otherwise).
PHONE_LAYOUTS = {"overview", "projects", "project", "diff", "confirm-undo"}


@pytest.mark.parametrize("size", list(WIDTHS))
def test_every_page_renders_cleanly(browser: Browser, site: Site, size: str) -> None:
    assert AXE.exists(), "axe-core is installed by `make setup` (Makefile: .tools/node_modules/axe-core)"
    ctx = signed_in(browser, site.d, size)
    pages = {
        "overview": "/ui/", "overview-7d": "/ui/?window=7d", "projects": "/ui/projects",
        "projects-search": "/ui/projects?q=sit", "project": "/ui/projects/u/site",
        "version": f"/ui/versions/{site.v2}", "version-failed": f"/ui/versions/{site.v3}",
        "diff": f"/ui/diff/{site.v1}/{site.v2}", "builds-failed": "/ui/builds?window=24h&status=failed",
        "confirm-rollback": f"/ui/versions/{site.v1}/confirm/rollback",
        "confirm-undo": "/ui/projects/u/site/confirm/undo",
    }
    accessibility: dict[str, list[str]] = {}
    for name, path in pages.items():
        page = ctx.new_page()
        watch = Watch(page)
        check_axe = size == "desktop" or name in PHONE_LAYOUTS
        if check_axe:
            page.add_init_script(path=str(AXE))
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").count() == 1, name
        # every control has a name a screen reader can say
        unlabelled = page.evaluate("""() => [...document.querySelectorAll(`input:not([type=hidden]), select,
            textarea, button`)].filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
            && !(el.textContent || '').trim()).map(el => el.outerHTML)""")
        assert unlabelled == [], (name, unlabelled)
        # nothing wider than the viewport at 390 px (tables scroll inside their own box)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (name, size, overflow)
        assert page.evaluate(LOW_CONTRAST_JS) == [], name
        # no raw 26-character id stands as a title
        assert not re.fullmatch(r"(Version )?[0-9A-Z]{26}", page.locator("h1").inner_text().strip()), name
        shoot(page, name, size)
        if check_axe and (found := axe_problems(page)):
            accessibility[name] = found
        assert watch.problems == [], (name, watch.problems)
        page.close()
    ctx.close()
    assert accessibility == {}, accessibility  # every page's, at once


@pytest.mark.parametrize("size", list(WIDTHS))
def test_production_comes_first(contexts: dict[str, BrowserContext], site: Site, size: str) -> None:
    """The project page opens on what is live (picture, address, Visit, since when, which version); the live row is
    marked in the timeline; a failed latest build is named beside it with its cause, the live site unchanged."""
    page = contexts[size].new_page()
    page.goto("/ui/projects/u/site")
    page.wait_for_load_state("networkidle")
    card = page.locator("section.production")
    assert card.is_visible()
    shot = card.locator(".prod-shot img")
    assert shot.evaluate("i => i.complete && i.naturalWidth >= 640"), "a large screenshot of the live site"
    box = shot.bounding_box()
    assert box and box["width"] >= (300 if size == "mobile" else 600)
    url = site.d.get(f"/versions/{site.v2}").json()["previewUrl"]
    visit = card.get_by_role("link", name="Visit")
    assert visit.get_attribute("href") == url
    assert card.get_by_role("link", name=url).count() == 1
    assert "Live since" in card.inner_text() and "A red page" in card.inner_text()
    assert site.v2[-8:] in card.inner_text()
    latest = page.locator("#latest-build")
    assert "failed" in latest.inner_text() and "the live site is unchanged" in latest.inner_text()
    assert "A broken red page" in latest.inner_text()
    live_row = page.locator(f"#v-{site.v2}")
    assert "is-live" in (live_row.get_attribute("class") or "") and "Live now" in live_row.inner_text()
    assert page.locator("li.version.is-live").count() == 1
    # titles, not ids: the row's link reads the prompt
    assert live_row.locator(".vtitle a").inner_text() == "A red page"
    shoot(page, "project-production", size)
    page.close()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_projects_status_is_the_live_sites(contexts: dict[str, BrowserContext], site: Site, size: str) -> None:
    """A project whose last build failed while its site is live says Live, with the failed build beside it; at
    390 px every column is on screen."""
    page = contexts[size].new_page()
    page.goto("/ui/projects?q=site")
    row = page.locator("table.projects tbody tr").filter(has=page.get_by_role("link", name="u/site"))
    assert "Live" in row.locator("td.site").inner_text() and "A red page" in row.locator("td.site").inner_text()
    assert "failed" in row.locator("td.last").inner_text()
    width = WIDTHS[size]["width"]
    for cell in row.locator("td").all():
        b = cell.bounding_box()
        assert b and b["x"] >= 0 and b["x"] + b["width"] <= width + 1, (size, cell.inner_text(), b)
    shoot(page, "projects-status", size)
    page.close()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_charts_link_to_the_builds_they_count(contexts: dict[str, BrowserContext], site: Site, size: str) -> None:
    page = contexts[size].new_page()
    page.goto("/ui/")
    reason = page.locator("ul.bars a").filter(has_text="build_failed").first
    label_px = reason.locator(".bar-label").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert label_px >= 13, label_px
    reason.click()
    page.wait_for_url(re.compile(r".*/ui/builds\?.*reason=build_failed"))
    assert page.get_by_role("link", name="A broken red page").count() >= 1
    assert page.get_by_role("link", name="Blue page").count() == 0
    page.go_back()
    chart = page.locator(f"svg.chart.{'narrow' if size == 'mobile' else 'wide'}")
    bar = chart.locator("a").last  # the newest bar with builds
    counted = int(re.search(r": (\d+) builds", bar.get_attribute("aria-label") or "").group(1))  # type: ignore[union-attr]
    bar.click()
    page.wait_for_url(re.compile(r".*/ui/builds\?at=.*&hours=1"))
    assert page.locator("li.build").count() == counted > 0
    shoot(page, "builds-hour", size)
    page.close()


def test_times_are_in_the_viewers_timezone(browser: Browser, site: Site) -> None:
    ctx = signed_in(browser, site.d, "desktop")
    page = ctx.new_page()
    page.goto("/ui/projects/u/site")
    first = page.locator("time").first
    assert "UTC" in (first.get_attribute("title") or "")  # the server's text, kept as the tooltip
    assert "UTC" not in first.inner_text()  # rewritten for Asia/Tokyo by the page
    ctx.close()


def test_keyboard_reaches_the_content_first(browser: Browser, site: Site) -> None:
    ctx = signed_in(browser, site.d, "mobile")
    page = ctx.new_page()
    page.goto("/ui/projects")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    ctx.close()


def test_diff_page_shows_both_screenshots_the_overlay_and_the_patch(browser: Browser, site: Site) -> None:
    ctx = signed_in(browser, site.d, "desktop")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(f"/ui/diff/{site.v1}/{site.v2}")
    page.wait_for_load_state("networkidle")
    for size in ("desktop", "mobile"):
        for which in ("A", "B"):
            img = page.get_by_alt_text(f"Version {which}, {size}")
            assert img.evaluate("i => i.complete && i.naturalWidth > 0"), (which, size)
    share = page.locator(".share").first.inner_text()
    assert float(share.rstrip("%")) > 0  # blue to red: pixels changed
    slider = page.get_by_label("Slider between A and B, desktop")
    slider.fill("20")
    assert "20%" in page.locator(".stage.desktop .clip").evaluate("el => el.style.clipPath")
    page.get_by_label("Changes overlay").first.check()
    overlay = page.get_by_alt_text("Changed pixels in red over a faded A, desktop")
    overlay.wait_for(state="visible")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=overlay.element_handle())
    patch = page.locator("table.sbs").first
    assert "Blue page" in patch.locator("td.del").first.inner_text()
    assert "A red page" in patch.locator("td.ins").first.inner_text()
    assert page.get_by_role("link", name="index.html").count() == 1  # the file list
    assert watch.problems == []
    ctx.close()


def test_log_page_shows_lines_arriving_during_a_build(browser: Browser, site: Site) -> None:
    vid = _build(site.d, "live", "slow blue page", wait="false")
    ctx = signed_in(browser, site.d, "desktop")
    page = ctx.new_page()
    page.goto(f"/ui/versions/{vid}")
    log = page.locator("#log")
    assert log.get_attribute("data-stream"), "the page did not open while the build ran"
    page.wait_for_function("() => document.getElementById('log').textContent.includes('tick-2')", timeout=60_000)
    early = log.inner_text()
    assert "tick-10" not in early  # lines are arriving while the build runs, not all at its end
    # the badge follows the build, and the step progress shows where it is with a running timer
    assert page.locator("#status").inner_text() == "building"
    current = page.locator("#steps li.current")
    assert current.get_attribute("data-step") == "building"
    assert page.locator("#steps li.done").evaluate_all("els => els.map(e => e.dataset.step)") == \
        ["queued", "generating", "installing"]
    first = current.locator("[data-timer]").inner_text()
    assert re.fullmatch(r"\d+:\d\d", first), first
    page.wait_for_function("t => document.querySelector('#steps [data-timer]').textContent !== t", arg=first)
    shoot(page, "version-running", "desktop")
    page.wait_for_function("() => document.getElementById('status').textContent === 'deployed'", timeout=120_000)
    assert "tick-10" in log.inner_text()
    assert "finished: deployed" in page.locator("#following").inner_text()
    assert page.locator("#steps li.done").count() >= 5 and page.locator("#steps li.current").count() <= 1
    shoot(page, "version-live-log", "desktop")
    ctx.close()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_failed_build_log_opens_at_its_end_with_the_error_marked(browser: Browser, site: Site, size: str) -> None:
    vid = _build(site.d, f"broken-{size}", "broken blue page", wait="false")
    assert site.d.wait_status(vid, ("deployed", "failed"))["status"] == "failed"
    ctx = signed_in(browser, site.d, size)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(f"/ui/versions/{vid}")
    page.wait_for_load_state("networkidle")
    log = page.locator("#log")
    text = log.text_content() or ""
    assert "step-120" in text and "\x1b" not in text and "[36m" not in text and "vite building" in text
    assert page.locator("mark#first-error").inner_text().endswith("error TS2304: Cannot find name foo")
    # opened at its end: the last line is in the box, the first is scrolled away
    assert log.evaluate("el => el.scrollHeight > el.clientHeight && "
                        "el.scrollTop + el.clientHeight >= el.scrollHeight - 2")
    assert "error TS2304: Cannot find name foo" in page.locator("#cause").inner_text()
    assert page.evaluate(LOW_CONTRAST_JS) == []
    shoot(page, "version-failed", size)
    page.goto(f"/ui/projects/u/broken-{size}")
    assert "error TS2304: Cannot find name foo" in page.locator(f"#v-{vid} .cause").inner_text()
    assert watch.problems == [], watch.problems
    ctx.close()


def _same_fields(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v[k] for k in ("userId", "projectId", "kind", "status", "rollbackOf", "parentVersionId", "framework",
                              "outputSizeBytes", "artifactUrl", "nodeVersion", "pnpmVersion", "failureReason")}


def test_ui_rollback_creates_the_same_version_as_the_api(browser: Browser, site: Site) -> None:
    d = site.d
    ctx = signed_in(browser, d, "desktop")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto("/ui/projects/u/site")
    page.locator(f"#v-{site.v1}").get_by_role("link", name="Roll back to this").click()
    # the confirmation shows what is live and what goes live: pictures, titles, short ids
    now, target = page.locator("figure.vcard").all()
    assert "Live now" in now.inner_text() and "A red page" in now.inner_text() and site.v2[-8:] in now.inner_text()
    assert "Goes live" in target.inner_text() and "Blue page" in target.inner_text()
    assert site.v1[-8:] in target.inner_text()
    assert target.locator("img").evaluate("i => i.complete && i.naturalWidth > 0")
    shoot(page, "confirm-rollback-versus", "desktop")
    page.get_by_role("button", name="Yes, roll back to this version").click()
    page.wait_for_url(re.compile(r".*/ui/versions/[0-9A-Z]{26}\?done=rollback$"))
    ui_id = page.url.split("?")[0].rsplit("/", 1)[1]
    assert ui_id not in (site.v1, site.v2)
    assert "Live now:" in page.locator("#flash").inner_text()  # a message names the version live now
    ui_v = d.wait_status(ui_id, ("deployed", "failed"))
    page.reload()
    flash = page.locator("#flash").inner_text()
    assert f"Rolled back to “Blue page” ({site.v1[-8:]})" in flash, flash
    assert f"Live now: “Rollback to Blue page” {ui_id[-8:]}" in flash, flash
    api_id = d.post(f"/rollback/{site.v1}", {"userId": "u", "projectId": "site"}).json()["versionId"]
    api_v = d.wait_status(api_id, ("deployed", "failed"))
    assert _same_fields(ui_v) == _same_fields(api_v)
    assert ui_v["status"] == "deployed" and ui_v["rollbackOf"] == site.v1
    stat = d.get(f"/versions/{ui_id}/diff/{api_id}", params={"mode": "stat"}).json()
    assert stat["filesChanged"] == 0  # the same sources
    assert d.preview(ui_v["previewUrl"]).text == d.preview(api_v["previewUrl"]).text
    assert watch.problems == []
    ctx.close()
    # undo on a phone: the confirmation names both versions, the message the one live after it
    ctx = signed_in(browser, d, "mobile")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto("/ui/projects/u/site")
    page.get_by_role("link", name="Undo").click()
    now, target = page.locator("figure.vcard").all()
    assert "Live now" in now.inner_text() and api_id[-8:] in now.inner_text()
    assert "Goes live" in target.inner_text() and ui_id[-8:] in target.inner_text()
    shoot(page, "confirm-undo-versus", "mobile")
    page.get_by_role("button", name=re.compile("^Yes, undo")).click()
    page.wait_for_url(re.compile(r".*/ui/projects/u/site\?done=undo$"))
    flash = page.locator("#flash").inner_text()
    assert flash.startswith("Undone.") and f"Live now: “Rollback to Blue page” {ui_id[-8:]}" in flash, flash
    assert page.locator(f"#v-{ui_id}.is-live").count() == 1
    shoot(page, "project-after-undo", "mobile")
    assert watch.problems == []
    ctx.close()


@pytest.mark.parametrize("size", list(WIDTHS))
def test_diff_fits_a_phone_and_the_slider_has_its_own_mode(contexts: dict[str, BrowserContext], site: Site,
                                                           size: str) -> None:
    page = contexts[size].new_page()
    page.goto(f"/ui/diff/{site.v1}/{site.v2}")
    page.wait_for_load_state("networkidle")
    width = WIDTHS[size]["width"]
    added = page.locator("table.sbs td.ins").first
    assert added.is_visible()
    b = added.bounding_box()
    assert b and b["x"] >= 0 and b["x"] + b["width"] <= width + 1, b  # the added line is on screen
    removed = page.locator("table.sbs td.del").first
    rb = removed.bounding_box()
    assert rb
    if size == "mobile":
        assert rb["y"] < b["y"]  # one column: the old line above the new one
    else:
        assert abs(rb["y"] - b["y"]) < 1 and rb["x"] < b["x"]  # side by side
    slider = page.get_by_label("Slider between A and B, desktop")
    assert slider.is_visible()
    for mode in ("Side by side", "Changes overlay"):
        page.get_by_label(mode).first.check()
        assert not slider.is_visible(), mode
    page.get_by_label("A/B slider").first.check()
    assert slider.is_visible()
    shoot(page, "diff-modes", size)
    page.close()


def test_forged_form_without_csrf_token_is_refused(browser: Browser, site: Site) -> None:
    ctx = signed_in(browser, site.d, "desktop")
    r = ctx.request.post(f"/ui/versions/{site.v1}/pin", form={"x": "1"}, max_redirects=0)
    assert r.status == 403
    assert site.d.get(f"/versions/{site.v1}").json()["pinned"] is False
    ctx.close()
