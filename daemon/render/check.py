"""The render check: open a preview in headless Chromium, collect errors, take screenshots, judge blankness."""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from PIL import Image

from daemon.render.browser import Browser, BrowserError, Event
from daemon.render.origin import Gate, HttpSource, OriginSource

RenderStatus = Literal["ok", "blank", "errors", "unavailable"]
# Viewport sizes: the width the page is laid out at and the screen the layout sees (100vh); the screenshot
# then covers the whole page at that width, from the top down to MAX_PAGE_HEIGHT.
DEFAULT_SIZES: dict[str, tuple[int, int]] = {"desktop": (1280, 800), "mobile": (390, 844)}
# A full-page screenshot stops here: 8000 px is ten desktop screens, enough for any landing page, and keeps
# one PNG and its diff within a few tens of MB of memory (the visual diff refuses sides over 8192).
MAX_PAGE_HEIGHT = 8000

QUIET_S = 0.5           # network idle this long counts as settled
RESIZE_QUIET_S = 0.25   # after a viewport change, for layout and responsive images
# At most this many pixels off the dominant colour counts as blank. Not a share: a page holding only an
# <h1> is 99.9% white at 1280x800 and a lone "Hi" ~96 pixels, and neither is blank (see RENDER.md).
BLANK_MAX_OTHER_PIXELS = 64
MAX_ITEMS = 50          # cap on errors and failed requests kept per report
MAX_ITEM_CHARS = 500
MAX_SCREENSHOT_BYTES = 32 * 2**20  # a PNG from the browser bigger than this is refused, not stored
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The gate refused it (Chromium adds ".Inspector"): recorded as blocked, not as the page failing.
_BLOCKED = "net::ERR_BLOCKED_BY_CLIENT"
_LOCAL_REFUSED = "Not allowed to load local resource: "  # Chromium's own refusal of file: URLs to a web page


class RenderInputError(ValueError):
    """The caller passed something check_page cannot use (code: invalid_url | invalid_size)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class RenderReport:
    """What one render check saw; `status` is ok | blank | errors | unavailable."""

    status: RenderStatus
    http_status: int | None = None
    js_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    blank: bool = False
    screenshots: dict[str, bytes] = field(default_factory=dict)
    detail: str = ""
    # Requests the page made outside its own origin: refused before they left the browser.
    blocked_requests: list[str] = field(default_factory=list)
    # Per screenshot: the page's own height in CSS px at that width (the screenshot stops at MAX_PAGE_HEIGHT).
    page_heights: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (screenshots reduced to their byte sizes)."""
        return {"status": self.status, "httpStatus": self.http_status, "jsErrors": self.js_errors,
                "failedRequests": self.failed_requests, "blank": self.blank,
                "screenshots": {k: len(v) for k, v in self.screenshots.items()}, "detail": self.detail,
                "blockedRequests": self.blocked_requests, "pageHeights": self.page_heights}


def check_page(url: str, *, host_header: str | None = None, chromium: str = "chromium", timeout_s: float = 30,
               sizes: dict[str, tuple[int, int]] | None = None,
               workdir: str | os.PathLike[str] | None = None, join_cgroups: Sequence[str] = (),
               env: Mapping[str, str] | None = None,
               wrap: Callable[[list[str]], list[str]] | None = None, source: OriginSource | None = None,
               chromium_sandbox: bool = False, private_tmp: bool = False, full_page: bool = True) -> RenderReport:
    """Load `url` in headless Chromium and report status, errors, blankness and one full-page PNG per size.

    Each size is a viewport (width, height); its screenshot is the whole page at that width, at least the
    viewport's height and at most MAX_PAGE_HEIGHT px tall (`full_page=False`: the first screen only, which
    bench/visual_diff.py compares against).

    The page reaches only its own origin: every request is paused in the browser; those for `url`'s origin are
    answered by `source` (default: the daemon fetches them from that origin itself), all others are refused and
    listed in `blocked_requests`. Wrapped in a network namespace, the browser has no other way out.

    Chromium is driven over --remote-debugging-pipe rather than Playwright: a dozen protocol calls need no
    Node driver, no new dependency and no debugging port (daemon/RENDER.md says more).
    Never raises for what the page does; a browser that is missing, crashes or times out gives
    status `unavailable`. The throwaway profile lives under `workdir` (default: the temp dir) and is
    removed with the browser. Raises RenderInputError only for a malformed url, host_header or size.
    `join_cgroups` (cgroup.procs files) confines the browser tree before it execs; `env` replaces the
    inherited environment; `wrap` puts the browser's command line inside a confinement (a bubblewrap view);
    `chromium_sandbox` keeps Chromium's own sandbox on; `private_tmp` (the wrap gives a private /tmp) keeps the
    profile there.
    """
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    target, connect_to = _target(url, host_header)
    _check_sizes(sizes)
    deadline = time.monotonic() + timeout_s
    page = _PageState()
    if source is None:
        source = HttpSource(target, connect_to=connect_to, timeout_s=timeout_s)
    browser = Browser(chromium, (), workdir, join_cgroups=join_cgroups, env=env, wrap=wrap,
                      sandbox=chromium_sandbox, private_tmp=private_tmp)
    gate = Gate(target, source, browser.send)
    try:
        with browser:
            report = _run(browser, page, gate, target, sizes, deadline, full_page)
    except BrowserError as exc:
        report = RenderReport("unavailable", page.http_status, page.js_errors[:MAX_ITEMS],
                              page.failed_list()[:MAX_ITEMS], False, {}, f"chromium {exc.reason}: {exc.message}")
    finally:
        gate.close()
    report.blocked_requests = [*gate.blocked, *page.refused][:MAX_ITEMS]
    n = len(gate.blocked) + len(page.refused)
    extra = [f"{n} request(s) outside the preview blocked"] if n else []
    extra += [f"origin: {note}" for note in gate.notes[:5]]
    if extra:
        report.detail = "; ".join([report.detail, *extra]) if report.detail else "; ".join(extra)
    return report


def _target(url: str, host_header: str | None) -> tuple[str, str | None]:
    """The URL to navigate to and, with a host_header (which becomes the URL's host), where its origin is."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RenderInputError("invalid_url", f"not an http(s) URL: {url!r}")
    if host_header is None:
        return url, None
    hh = urlsplit(f"//{host_header}")
    if not hh.hostname or any(c in host_header for c in "/?#@ ,") or (hh.port is None and ":" in host_header):
        raise RenderInputError("invalid_url", f"not a host[:port]: {host_header!r}")
    port = hh.port if hh.port is not None else parts.port
    netloc = hh.hostname + (f":{port}" if port is not None else "")
    # The browser navigates to the named host; the daemon answers that origin from the real address.
    return (urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
            f"{parts.scheme}://{parts.netloc}")


def _check_sizes(sizes: dict[str, tuple[int, int]]) -> None:
    if not sizes:
        raise RenderInputError("invalid_size", "at least one screenshot size is needed")
    for name, (w, h) in sizes.items():
        if not (isinstance(w, int) and isinstance(h, int) and 1 <= w <= 4096 and 1 <= h <= 4096):
            raise RenderInputError("invalid_size", f"size {name!r} must be two integers in 1..4096, got {(w, h)}")


class _PageState:
    """Events folded into what the report needs."""

    def __init__(self) -> None:
        self.loader_id: str | None = None
        self.doc_status: dict[str, int] = {}
        self.loaded = False
        self.js_errors: list[str] = []
        self.failed: dict[str, str] = {}
        self.refused: list[str] = []  # file: URLs Chromium itself would not load for the page
        self.inflight: dict[str, str] = {}
        self.urls: dict[str, tuple[str, str]] = {}
        self.last_activity = time.monotonic()

    @property
    def http_status(self) -> int | None:
        """Status of the main document (its request id is the navigation's loader id)."""
        return self.doc_status.get(self.loader_id) if self.loader_id else None

    def failed_list(self) -> list[str]:
        return list(self.failed.values())

    def on_event(self, ev: Event) -> None:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            self._error(_exception_text(p.get("exceptionDetails", {})))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self._error("console.error: " + " ".join(_remote_text(a) for a in p.get("args", [])))
        elif method == "Log.entryAdded":
            text = str(p.get("entry", {}).get("text", ""))
            if text.startswith(_LOCAL_REFUSED):
                self._refused(text[len(_LOCAL_REFUSED):])
        elif method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Network.requestWillBeSent":
            req = p.get("request", {})
            self.urls[p["requestId"]] = (req.get("method", "GET"), req.get("url", ""))
            if not req.get("url", "").startswith(("data:", "blob:")):  # in memory: nothing to wait for
                self.inflight[p["requestId"]] = req.get("url", "")
            self.last_activity = time.monotonic()
        elif method == "Network.responseReceived":
            resp, rid = p.get("response", {}), p["requestId"]
            status = int(resp.get("status", 0))
            # The navigate reply can arrive after this event, so match the loader id later.
            if p.get("type") == "Document":
                self.doc_status[rid] = status
            if status >= 400 and not _is_favicon(rid, self.urls):
                verb, u = self.urls.get(rid, ("GET", resp.get("url", "")))
                self.failed[rid] = _clip(f"{verb} {u} -> {status}")
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            rid = p["requestId"]
            self.inflight.pop(rid, None)
            self.last_activity = time.monotonic()
            # A cancelled request (navigation replaced, image no longer needed) is not the page failing.
            if method == "Network.loadingFailed" and self.urls.get(rid, ("", ""))[1].startswith("file:"):
                self._refused(self.urls[rid][1])
            elif (method == "Network.loadingFailed" and not p.get("canceled") and rid not in self.failed
                    and not str(p.get("errorText", "")).startswith(_BLOCKED) and not _is_favicon(rid, self.urls)):
                verb, u = self.urls.get(rid, ("GET", "?"))
                self.failed[rid] = _clip(f"{verb} {u} {p.get('errorText', 'failed')}")

    def _refused(self, url: str) -> None:
        entry = _clip(f"GET {url} (local file refused by Chromium)")
        if entry not in self.refused and len(self.refused) < MAX_ITEMS:
            self.refused.append(entry)

    def _error(self, text: str) -> None:
        if len(self.js_errors) < MAX_ITEMS:
            self.js_errors.append(_clip(text))

    def settled(self, now: float, quiet: float) -> bool:
        return self.loaded and not self.inflight and now - self.last_activity >= quiet


def _run(browser: Browser, page: _PageState, gate: Gate, url: str, sizes: dict[str, tuple[int, int]],
         deadline: float, full_page: bool = True) -> RenderReport:
    def on_event(ev: Event) -> None:
        if ev.get("method") == "Fetch.requestPaused":
            gate.paused(ev.get("params", {}))
        else:
            page.on_event(ev)

    def call(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return browser.call(method, params, session=session, deadline=deadline, on_event=on_event)

    # On the browser target, before any page exists: every request of every frame, worker and service worker
    # pauses here (WebSocket and WebRTC do not; the network namespace leaves them nowhere to go).
    browser.call("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}, deadline=deadline)
    target = browser.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                           deadline=deadline)["sessionId"]
    for domain in ("Page", "Runtime", "Network", "Log"):
        call(f"{domain}.enable")
    call("Network.setCacheDisabled", {"cacheDisabled": True})
    first, (w, h) = next(iter(sizes.items()))
    _viewport(call, first, w, h)
    try:
        # A server that accepts and never answers keeps Page.navigate waiting: the page failing, not Chromium.
        nav = browser.call("Page.navigate", {"url": url}, session=session, deadline=_settle_cap(deadline),
                           on_event=on_event)
    except BrowserError as exc:
        if exc.reason != "timeout":
            raise
        page.failed.setdefault("nav", _clip(f"GET {url} (no response)"))
        return RenderReport("errors", None, page.js_errors, page.failed_list(), False, {},
                            "page did not respond in time")
    page.loader_id = nav.get("loaderId")
    if nav.get("errorText"):
        # The preview did not answer at all: that is the page failing, not the browser (see RENDER.md).
        page.failed.setdefault(page.loader_id or "nav", _clip(f"GET {url} {nav['errorText']}"))
        return RenderReport("errors", None, page.js_errors, page.failed_list(), False, {},
                            f"page did not load: {nav['errorText']}")
    cap = _settle_cap(deadline)
    notes = _settle(browser, page, on_event, cap, QUIET_S)
    text = call("Runtime.evaluate", {"expression": "document.body ? document.body.innerText.trim().length : 0",
                                     "returnByValue": True}).get("result", {}).get("value", 0)
    shots: dict[str, bytes] = {}
    heights: dict[str, int] = {}
    for i, (name, (w, h)) in enumerate(sizes.items()):
        if i:
            _viewport(call, name, w, h)
            # Past the cap a resize still gets its short quiet period for layout.
            notes += _settle(browser, page, on_event, max(cap, time.monotonic() + RESIZE_QUIET_S), RESIZE_QUIET_S)
        clip, heights[name] = _full_page_clip(call, w, h, MAX_PAGE_HEIGHT if full_page else h)
        if full_page and heights[name] > MAX_PAGE_HEIGHT:
            notes.append(f"{name} page is {heights[name]} px tall; its screenshot stops at {MAX_PAGE_HEIGHT} px")
        # captureBeyondViewport renders below the fold without resizing the viewport, so 100vh stays a screen.
        shot = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        png = _checked_png(shot.get("data"), w, h)
        if png is None:
            raise BrowserError("bad_screenshot", f"the {name} screenshot is not a PNG {w} px wide and {h} to "
                                                 f"{MAX_PAGE_HEIGHT} px tall of at most {MAX_SCREENSHOT_BYTES} bytes; "
                                                 "nothing stored")
        shots[name] = png
    other = _off_colour_pixels(shots[first])
    blank = other <= BLANK_MAX_OTHER_PIXELS or not text
    why = []
    if other <= BLANK_MAX_OTHER_PIXELS:
        why.append(f"{first} screenshot is one colour ({other} other pixels)")
    if not text:
        why.append("no visible text")
    failed = page.failed_list()
    if page.http_status is not None and page.http_status >= 400:
        status: RenderStatus = "errors"
    else:
        status = "errors" if page.js_errors or failed else "blank" if blank else "ok"
    counts = f"{len(page.js_errors)} js error(s), {len(failed)} failed request(s)"
    detail = "; ".join([*dict.fromkeys(notes), *why, counts])
    return RenderReport(status, page.http_status, page.js_errors[:MAX_ITEMS], failed[:MAX_ITEMS], blank, shots,
                        detail, page_heights=heights)


def _full_page_clip(call: Any, w: int, h: int, cap: int = MAX_PAGE_HEIGHT) -> tuple[dict[str, float], int]:
    """The clip that covers the whole page at viewport width ``w``, and the page's height in screenshot px.

    A page without a mobile viewport tag is laid out wider than a phone (980 CSS px) and shown scaled
    down, as a phone shows it: the clip spans the layout's width and is scaled to ``w`` pixels. The height
    is at least the viewport's and at most MAX_PAGE_HEIGHT pixels.
    """
    metrics = call("Page.getLayoutMetrics")
    layout = metrics.get("cssLayoutViewport") or {}
    content = metrics.get("cssContentSize") or {}
    css_w = float(layout.get("clientWidth") or w)
    css_h = float(content.get("height") or 0)
    scale = w / css_w if css_w > 0 else 1.0
    page_px = int(css_h * scale)
    full_px = min(max(h, page_px), cap)
    return {"x": 0, "y": 0, "width": css_w, "height": full_px / scale, "scale": scale}, page_px


def _viewport(call: Any, name: str, w: int, h: int) -> None:
    call("Emulation.setDeviceMetricsOverride",
         {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": name == "mobile" or w < 600})


def _settle(browser: Browser, page: _PageState, on_event: Callable[[Event], None], cap: float,
            quiet: float) -> list[str]:
    """Wait (until `cap` at most) for the load event and a quiet network; a page that never settles is noted."""
    while True:
        now = time.monotonic()
        if page.settled(now, quiet):
            return []
        if now >= cap:
            # A request still open when the budget runs out is one the page is waiting on in vain.
            for rid, u in page.inflight.items():
                if not _is_favicon(rid, page.urls):
                    page.failed.setdefault(rid, _clip(f"{page.urls.get(rid, ('GET', u))[0]} {u} (no response)"))
            notes = [] if page.loaded else ["load event did not fire in time"]
            return notes + ([f"{len(page.inflight)} request(s) still open"] if page.inflight else [])
        browser.pump(min(cap, now + 0.1), on_event)


def _settle_cap(deadline: float) -> float:
    """Waiting on the page stops here, keeping a slice of the budget so the screenshots still get taken."""
    return deadline - min(5.0, (deadline - time.monotonic()) / 3)


def _is_favicon(rid: str, urls: dict[str, tuple[str, str]]) -> bool:
    """Chromium asks for /favicon.ico on its own; its absence is not the page failing."""
    return urlsplit(urls.get(rid, ("", ""))[1]).path == "/favicon.ico"


def _checked_png(data: object, w: int, h: int) -> bytes | None:
    """The screenshot as PNG bytes when it is one, ``w`` wide and from ``h`` (the viewport) to MAX_PAGE_HEIGHT
    tall, within the byte cap; else None.
    What leaves the browser is data the daemon checks, never trusted (the page runs in that browser)."""
    if not isinstance(data, str) or len(data) > MAX_SCREENSHOT_BYTES * 4 // 3 + 4:
        return None
    try:
        png = base64.b64decode(data, validate=True)
        if not png.startswith(_PNG_MAGIC) or len(png) > MAX_SCREENSHOT_BYTES:
            return None
        with Image.open(io.BytesIO(png)) as img:
            # One pixel of slack: a scaled clip may round either way.
            if img.format != "PNG" or img.width != w or not h - 1 <= img.height <= MAX_PAGE_HEIGHT + 1:
                return None
            img.verify()
    except (ValueError, OSError, SyntaxError, Image.DecompressionBombError):
        return None
    return png


def _off_colour_pixels(png: bytes) -> int:
    """How many pixels differ from the most common colour."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    total = img.width * img.height
    colours = img.getcolors(total) or [(0, (0, 0, 0))]
    return total - max(c for c, _ in colours)


def _exception_text(d: dict[str, Any]) -> str:
    exc = d.get("exception") or {}
    text = exc.get("description") or d.get("text", "exception")
    where = d.get("url") or ""
    line = d.get("lineNumber")
    # description carries "Error: msg\n    at ..." ; keep the first line plus the location.
    first = str(text).splitlines()[0] if text else "exception"
    return f"{first} ({where}:{line + 1})" if where and line is not None else first


def _remote_text(arg: dict[str, Any]) -> str:
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description") or arg.get("type", ""))


def _clip(s: str) -> str:
    return s if len(s) <= MAX_ITEM_CHARS else s[: MAX_ITEM_CHARS - 1] + "…"
