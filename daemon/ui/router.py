"""The dashboard's router under /ui: pages, actions, static assets, sessions and CSRF (Litestar's middleware),
HTML error pages, and the template engine the app is built with."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.config.csrf import CSRFConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.base import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp
from markupsafe import Markup, escape

from daemon.core.config import Config
from daemon.core.errors import AppError
from daemon.ui import actions, pages, present, repairview
from daemon.ui.access import SignInRequired

HERE = Path(__file__).parent
SESSION_COOKIE = "previewd_ui_session"
CSRF_COOKIE = "previewd_ui_csrf"
# Pages are the daemon's own, but they show hostile text (prompts, logs, patches): scripts only from /ui/static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def _key(cfg: Config, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the HMAC secret (restarts keep sessions; purposes differ)."""
    return hashlib.sha256(f"previewd-ui:{purpose}\n{cfg.secrets.hmac_secret}".encode()).digest()


def when(value: Any) -> Markup:
    """A <time> element: UTC in the markup, rewritten to the viewer's timezone by ui.js."""
    if value is None or value == "":
        return Markup("—")
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", ""))
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    iso = t.isoformat(timespec="seconds") + "Z"
    return Markup(f'<time datetime="{iso}">{escape(t.strftime("%Y-%m-%d %H:%M"))} UTC</time>')


def ms(value: Any) -> str:
    """Milliseconds for people: 850 ms, 12.3 s, 2 min 5 s."""
    if value is None:
        return "—"
    v = int(value)
    if v < 1000:
        return f"{v} ms"
    if v < 60_000:
        return f"{v / 1000:.1f} s"
    return f"{v // 60_000} min {v % 60_000 // 1000} s"


def size(value: Any) -> str:
    """Bytes for people."""
    if value is None:
        return "—"
    n = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's template engine: Jinja2 over daemon/ui/templates, autoescaped, with the dashboard's filters."""

    def setup(engine: JinjaTemplateEngine) -> None:
        engine.engine.filters.update(when=when, ms=ms, size=size, vtitle=present.title, short=present.short)
        engine.engine.globals.update(quote=quote)

    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=setup)


def _sign_in_redirect(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/ui/sign-in?next={quote(path, safe='')}", status_code=303)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, AppError)
    return Template("error.html", status_code=exc.status,
                    context={"page": "error", "status": exc.status, "code": exc.code, "message": exc.message})


def _headers(response: Response[Any]) -> Response[Any]:
    response.headers.setdefault("content-security-policy", CSP)
    response.headers.setdefault("x-frame-options", "DENY")
    response.headers.setdefault("referrer-policy", "same-origin")
    response.headers.setdefault("x-content-type-options", "nosniff")
    response.headers.setdefault("cache-control", "no-store")
    return response


def ui_router(cfg: Config) -> Router:
    """Everything under /ui. Sessions are signed, encrypted cookies scoped to /ui; the CSRF check covers every
    unsafe method under /ui and nothing else, so the signed JSON API is untouched."""
    session = CookieBackendConfig(secret=_key(cfg, "session"), key=SESSION_COOKIE, path="/ui", httponly=True,
                                  samesite="strict", secure=cfg.ui.secure_cookies,
                                  max_age=int(cfg.ui.session_hours * 3600))
    csrf = CSRFConfig(secret=_key(cfg, "csrf").hex(), cookie_name=CSRF_COOKIE, cookie_path="/ui",
                      cookie_samesite="strict", cookie_secure=cfg.ui.secure_cookies, cookie_httponly=True)
    static = create_static_files_router(path="/static", directories=[HERE / "static"], name="ui-static",
                                        include_in_schema=False, cache_control=None)

    def sessions(app: ASGIApp) -> ASGIApp:
        # Made when the app is built: Litestar deep-copies a router on registration, and the cookie backend's
        # cipher cannot be copied.
        return SessionMiddleware(app=app, backend=ClientSideSessionBackend(config=session))

    return Router(
        path="/ui",
        route_handlers=[*pages.HANDLERS, *actions.HANDLERS, *repairview.HANDLERS, static],
        middleware=[sessions, DefineMiddleware(CSRFMiddleware, config=csrf)],
        exception_handlers={SignInRequired: _sign_in_redirect, AppError: _error_page},
        after_request=_headers,  # type: ignore[arg-type]
        include_in_schema=False,
    )
