"""How the dashboard names and explains things to a person: version titles from prompts, a build's step progress,
and the message shown after an action (always naming the version live now)."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from daemon.core.db import ProjectVersion
from daemon.steps.pipeline import PHASES

TITLE_CHARS = 60
_SPACE = re.compile(r"\s+")
# Which phase a failure happened in, by its reason (the rest fail while building).
_FAILED_IN = {"generation_failed": "generating", "invalid_output": "generating", "history_limit": "generating",
              "install_failed": "installing", "audit_failed": "installing", "deploy_failed": "deploying",
              "sandbox_unavailable": "generating", "interrupted": "generating"}
# The version's `timings` key each phase's duration is read from.
_TIMING_OF = {"generating": "generate", "installing": "install", "building": "bundle", "deploying": "deploy",
              "checking": "render"}


def short(version_id: str | None) -> str:
    """The last 8 characters of a version id: enough to tell a project's versions apart (ULIDs end randomly)."""
    return (version_id or "")[-8:]


def _words(prompt: str) -> str:
    text = _SPACE.sub(" ", prompt).strip()
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0] or text[:TITLE_CHARS]
    return cut.rstrip(",.;:-") + "…"


@functools.lru_cache(maxsize=4096)  # a version's prompt never changes; a timeline names each target once
def _prompt_of(version_id: str) -> str | None:
    row = ProjectVersion.select(ProjectVersion.prompt).where(ProjectVersion.version_id == version_id).first()
    return row.prompt if row is not None else None


def title(v: ProjectVersion | None) -> str:
    """A version's title: its prompt's words cut at a word near TITLE_CHARS; a rollback (whose prompt is
    "rollback to <id>") is "Rollback to <its target's title>"; else "Version <short id>"."""
    if v is None:
        return "no version"
    if v.kind == "rollback" and v.rollback_of:
        target = _prompt_of(v.rollback_of)
        return f"Rollback to {_words(target) if target else short(v.rollback_of)}"
    return _words(v.prompt or "") or f"Version {short(v.version_id)}"


@dataclass
class Step:
    """One phase of the step progress: its state (done, current, failed, todo, skipped) and its time if known."""

    name: str
    state: str
    ms: int | None = None


def progress(v: ProjectVersion, timings: dict[str, Any] | None, live: tuple[str, float] | None,
             render_pending: bool) -> list[Step]:
    """queued -> generating -> installing -> building -> deploying -> checking for one version.

    `live` is the phase a build running here is in (BuildLogs.phase); `render_pending`: the version is deployed
    and its render check has not reported yet."""
    times = timings or {}
    if v.status == "failed":
        at = _FAILED_IN.get(v.failure_reason or "", "building")
    elif v.status == "queued":
        at = live[0] if live else "queued"
    elif v.status == "building":
        at = live[0] if live else "generating"
    elif v.status == "deploying":
        at = "deploying"
    else:
        at = "checking" if render_pending else ""
    steps: list[Step] = []
    reached = at == ""  # a finished, checked version: every phase done
    index = PHASES.index(at) if at in PHASES else len(PHASES)
    for i, name in enumerate(PHASES):
        ms = times.get(_TIMING_OF.get(name, ""))
        ms = int(ms) if isinstance(ms, int | float) and ms > 0 else None
        if reached or i < index:
            state = "done"
        elif i == index:
            state = "failed" if v.status == "failed" else "current"
        else:
            state = "todo"
        if v.kind == "rollback" and name in ("generating", "installing", "building") and state == "done" \
                and ms is None and v.status == "deployed":
            state = "skipped"  # an artifact redeploy builds nothing
        steps.append(Step(name, state, ms))
    return steps


def started_at(v: ProjectVersion, live: tuple[str, float] | None) -> str:
    """When the current phase began, ISO in UTC (the page's timer counts from it): the phase's start for a running
    build, else the version's creation."""
    if live is not None:
        t = datetime.fromtimestamp(live[1], UTC).replace(tzinfo=None)
    elif v.status == "deployed" and v.deployed_at:  # the render check runs after going live
        t = v.deployed_at if isinstance(v.deployed_at, datetime) else datetime.fromisoformat(str(v.deployed_at))
    else:
        t = v.created_at if isinstance(v.created_at, datetime) else datetime.fromisoformat(str(v.created_at))
    return t.isoformat(timespec="seconds") + "Z"


def elapsed_s(v: ProjectVersion) -> int:
    """Seconds since the version was created (what the timer shows before the page's script takes over)."""
    created = v.created_at if isinstance(v.created_at, datetime) else datetime.fromisoformat(str(v.created_at))
    return max(0, int(time.time() - created.replace(tzinfo=UTC).timestamp()))


DONE_ACTIONS = {
    "rollback": "Rollback started",
    "undo": "Undone",
    "redo": "Redone",
    "pin": "Pinned",
    "unpin": "Unpinned",
    "rebuild": "Rebuild started",
}


def flash(done: str, subject: ProjectVersion | None, live: ProjectVersion | None) -> dict[str, Any] | None:
    """The message after an action (`done` from the redirect, never free text from the URL): what happened to
    `subject` and which version is live now."""
    if done not in DONE_ACTIONS:
        return None
    what = DONE_ACTIONS[done]
    if done == "rollback" and subject is not None:
        if subject.status == "deployed" and live is not None and live.version_id == subject.version_id:
            what = f"Rolled back to {title_of_rollback(subject)}"
        else:
            what = f"Rollback started: this version ({short(subject.version_id)}) goes live once it is deployed"
    elif done == "rebuild" and subject is not None:
        what = f"Rebuild started as {short(subject.version_id)}; the live version stays until it is deployed"
    elif done in ("pin", "unpin") and subject is not None:
        what = f"{what} “{title(subject)}” ({short(subject.version_id)})"
    return {"what": what, "live": live}


def title_of_rollback(v: ProjectVersion) -> str:
    """A rollback version's target in words: its title and short id."""
    if not v.rollback_of:
        return f"“{title(v)}”"
    target = _prompt_of(v.rollback_of)
    return f"“{_words(target) if target else 'Version ' + short(v.rollback_of)}” ({short(v.rollback_of)})"
