"""The template generator's repair: what it can fix deterministically from a failed version's diagnostics.

Two fixes, both small and safe: a file of the template's own pinned sources that a diagnostic names and that
differs from the pinned text is restored; an import of a module that does not exist (tsc's "Cannot find module",
Vite's "Failed to resolve import") is removed. Anything else it says it cannot repair (GenerationError), so the
loop stops with `cannot_repair` instead of spending an attempt on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from daemon.generators import template_app as app
from daemon.generators.base import GenerationError

_MISSING = re.compile(r"""(?:Cannot find module|Failed to resolve import|Could not resolve)\s+['"]([^'"]+)['"]""")


def _without_import(text: str, module: str) -> str:
    """`text` minus the import statements of `module` (single-line imports only: the template writes no other)."""
    pattern = re.compile(r"^\s*import\b[^\n]*?from\s+['\"]" + re.escape(module) + r"['\"];?[ \t]*\n?"
                         r"|^\s*import\s+['\"]" + re.escape(module) + r"['\"];?[ \t]*\n?", re.M)
    return pattern.sub("", text)


def repair_files(repair: Mapping[str, Any], base: Mapping[str, str], log: Callable[[str], None]) -> dict[str, str]:
    """The changed files (path -> new content) that fix what the diagnostics name; GenerationError when none can."""
    pinned = app.source_files()
    changed: dict[str, str] = {}
    errors = [e for e in (repair.get("errors") or []) if isinstance(e, Mapping)]
    texts = [str(e.get("message", "")) for e in errors] + [str(x) for x in (repair.get("logTail") or [])]
    for e in errors:
        path = str(e.get("file") or "")
        if path in pinned and base.get(path) != pinned[path]:
            changed[path] = pinned[path]
            log(f"generator: template repair restores its own {path}")
    for text in texts:
        m = _MISSING.search(text)
        if m is None:
            continue
        module = m.group(1)
        for path, content in sorted(base.items()):
            if not path.endswith((".ts", ".tsx", ".js", ".jsx")) or path in changed:
                continue
            fixed = _without_import(content, module)
            if fixed != content:
                changed[path] = fixed
                log(f"generator: template repair drops the import of missing {module!r} from {path}")
    if not changed:
        first = texts[0] if texts else str(repair.get("message") or repair.get("reason") or "no diagnostics")
        raise GenerationError(f"the template generator cannot repair this deterministically: {first[:300]}")
    return changed
