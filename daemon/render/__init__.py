"""Render check of a preview in headless Chromium over the DevTools pipe (see daemon/RENDER.md)."""

from daemon.render.browser import Browser, BrowserError
from daemon.render.check import DEFAULT_SIZES, RenderInputError, RenderReport, RenderStatus, check_page

__all__ = ["DEFAULT_SIZES", "Browser", "BrowserError", "RenderInputError", "RenderReport", "RenderStatus",
           "check_page"]
