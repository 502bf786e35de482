"""The repair prompt's text (README "Repair"): what a generator that takes prose (the Claude backend) is told about a
failed version, and what the dashboard shows before "Try to fix" sends it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REPAIR_PROMPT = """\
This is a REPAIR of the project below: its last build failed. Fix the cause with the smallest change that
makes it build and render: change as few files and lines as possible, keep everything else exactly as it is,
and do not add features. Answer with a delta ({"delta": true, "files": [...], "deleted": [...]}).

Failure: {reason}: {message}
"""


def repair_text(repair: Mapping[str, Any]) -> str:
    """The repair part of the prompt (README "Repair"): the failure, the first errors with their source lines,
    the log's last lines; only what the request carries (no path of the droplet, no secret: the log is redacted
    and the errors name project paths)."""
    text = REPAIR_PROMPT.replace("{reason}", str(repair.get("reason") or "build_failed")) \
        .replace("{message}", str(repair.get("message") or "")[:500])
    errors = repair.get("errors") or []
    if errors:
        text += "\nErrors:\n"
        for e in errors:
            text += f"- {e.get('location') or e.get('file') or '?'}: {e.get('message', '')}\n"
            for ln in e.get("source") or []:
                text += f"    {ln}\n"
    render = repair.get("render")
    if isinstance(render, dict):
        text += f"\nThe page rendered {render.get('status')}: " + "; ".join(
            str(x) for x in (render.get("jsErrors") or [])[:5]) + "\n"
    tail = repair.get("logTail") or []
    if tail:
        text += "\nLast lines of the build log:\n" + "\n".join(str(x) for x in tail) + "\n"
    return text
