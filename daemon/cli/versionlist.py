"""`daemonctl versions`: a project's history with the live version marked and each preview URL, in 100 columns."""

from __future__ import annotations

import shutil
from typing import Any

from daemon.cli.client import Client

WIDTH = 100  # the table fits this many columns; a wider terminal gives the prompt the rest
INDENT = " " * 6  # a row's second line starts under VERSION


def live_version_id(c: Client, user_id: str, project_id: str, answer: dict[str, Any]) -> str | None:
    """The project's live version: the history answer's `liveVersionId` when it carries one, else the public
    preview pointer's `latestVersionId` (the version the project's preview serves); None when nothing is live."""
    if "liveVersionId" in answer:
        return answer["liveVersionId"]  # type: ignore[no-any-return]
    resp = c.get(f"/projects/{user_id}/{project_id}/preview")
    if resp.status_code != 200:
        return None  # 404 project_not_found: no version of it was ever deployed
    return resp.json().get("latestVersionId")  # type: ignore[no-any-return]


def annotate(answer: dict[str, Any], live_id: str | None) -> dict[str, Any]:
    """The history answer with `liveVersionId` and each version's `live` added (nothing removed: `--json` keeps
    its shape for scripts written before)."""
    items = [{**v, "live": v.get("versionId") == live_id} for v in answer.get("versions", [])]
    return {**answer, "versions": items, "liveVersionId": live_id}


def checks_cell(checks: Any) -> str:
    """`tsc:pass lint:skip` from a version's checks record."""
    if not isinstance(checks, dict):
        return ""
    short = {"typecheck": "tsc", "lint": "lint"}
    return " ".join(f"{short[k]}:{str((checks.get(k) or {}).get('status', '?'))[:4]}" for k in short)


def fit(text: str, width: int) -> str:
    """One line of at most ``width`` characters: newlines folded, a cut marked with an ellipsis at a word end."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    if width <= 1:
        return "…"[:width]
    cut = line[:width - 1]
    space = cut.rfind(" ")  # end at a word unless that loses more than a few characters
    return (cut[:space] if space > 0 and space >= width - 12 else cut).rstrip() + "…"


def _created(value: str | None) -> str:
    """`2026-12-07T13:53:12.345Z` as `2026-12-07 13:53` (UTC, the header says so)."""
    return (value or "")[:16].replace("T", " ")


def _prompt(v: dict[str, Any]) -> str:
    return str(v.get("prompt") or "")


def _detail(v: dict[str, Any], width: int) -> str:
    """The row's second line: the preview URL whole (a cut URL cannot be opened), the version a rollback copied,
    the checks, then the failure's reason and first line, each cut to what is left of ``width``."""
    parts = [str(v["previewUrl"])] if v.get("previewUrl") else []
    if v.get("rollbackOf"):
        parts.append(f"rollback of {v['rollbackOf']}")
    if checks_cell(v.get("checks")):
        parts.append(checks_cell(v.get("checks")))
    if v.get("failureReason"):
        first = (v.get("failureMessage") or "").strip().splitlines()
        parts.append(f"{v['failureReason']}: {first[0]}" if first else str(v["failureReason"]))
    line = INDENT
    for i, part in enumerate(parts):
        if i == 0 and v.get("previewUrl"):
            line += part
            continue
        sep = "  " if line.strip() else ""
        room = width - len(line) - len(sep)
        if room < 12:  # not enough left to say anything readable
            break
        line += sep + fit(part, room)
    return line if line.strip() else ""


def table(user_id: str, project_id: str, answer: dict[str, Any], width: int | None = None) -> str:
    """An annotated history answer (see `annotate`) as text: what is live (and the project's stable live URL when it
    has one), then up to two lines a version, the live one marked; every line within ``width`` (default: the
    terminal's, at least 100) but one holding a URL longer than that."""
    width = width or max(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    items: list[dict[str, Any]] = answer.get("versions", [])
    live_id = answer.get("liveVersionId")
    rows = [f"{user_id}/{project_id}: " + (f"live {live_id}" if live_id else "no live version")]
    if answer.get("liveUrl"):
        rows.append(f"always the live version: {answer['liveUrl']}")
    rows.append(f"{'LIVE':4}  {'VERSION':26}  {'STATUS':9}  {'CREATED (UTC)':16}  PROMPT")
    prompt_width = width - len(rows[-1]) + len("PROMPT")
    for v in items:
        mark = "live" if v.get("live", v.get("versionId") == live_id) else ""
        rows.append(f"{mark:4}  {v['versionId']:26}  {v['status']:9}  {_created(v.get('createdAt')):16}  "
                    f"{fit(_prompt(v), prompt_width)}".rstrip())
        detail = _detail(v, width)
        if detail:
            rows.append(detail)
    if not items:
        rows.append("(no versions)")
    return "\n".join(rows)


TIMING_ORDER = ("queue", "generate", "write", "install", "bundle_warm", "bundle_cold", "export", "deploy")


def timings_line(v: dict[str, Any]) -> str:
    """One line of where a version's time went, and which path its bundle took (warm bundler or cold)."""
    t = v.get("timings") if isinstance(v, dict) else None
    if not isinstance(t, dict) or not t:
        return "timings: none recorded"
    path = "warm bundler" if "bundle_warm" in t else "cold" if "bundle_cold" in t else "not bundled"
    parts = [f"{k.replace('bundle_', 'bundle ')} {t[k]} ms" for k in TIMING_ORDER if isinstance(t.get(k), int)]
    return f"bundle: {path}; timings: " + ", ".join(parts)

