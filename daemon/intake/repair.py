"""The bounded repair loop: a failed (or blank-rendering) version is handed back to the generator with its own
diagnostics, each attempt a version of its own, within [repair] max_attempts and the plan's monthly budget.

A failed version of a repairable kind gets its repair request (`repair_request`: reason, first errors with their
source lines, the log's last lines without ANSI, the instruction to change as little as possible). Under
`auto` the loop then queues attempt 1 (kind `repair`, parent = the failed version, `repair_of` = the loop's root,
`repair_attempt` = 1); each attempt that fails is judged against the one before: the loop stops at the first
passing version, at max_attempts, when the diagnostics did not get better (same, or more errors: no_progress),
when the budget is spent, or when the generator cannot repair. The root's `repair` column holds the loop's state
and outcome, which the build answer, `GET /versions/{id}` and the `repair_ended` event show. Under `suggest`
nothing runs by itself: `POST /versions/{id}/repair` runs one attempt.

The pointer never moves to a failed attempt (a failed version never goes live). A render failure is found after
its version went live, so a render repair's attempt goes live when it builds, like any build (README "Repair").
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from daemon.core import quotas, versions
from daemon.core.db import BuildUsage, ProjectVersion
from daemon.core.errors import AppError, Conflict, NotFound, QuotaExceeded
from daemon.core.events import RepairEnded
from daemon.core.logtext import error_line, strip_ansi
from daemon.intake import submit
from daemon.project.buildlog import read_tail

if TYPE_CHECKING:
    from daemon.intake.queue import BuildQueue
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.repair")

# Failures the generator's own code caused, after its sources were recorded (what an attempt starts from).
REPAIRABLE = ("build_failed", "check_failed", "no_output")
RENDER_BROKEN = ("blank", "errors")
INSTRUCTION = ("Fix the cause of this failure with the smallest possible change: touch as few files and lines as "
               "you can, keep everything else exactly as it is, add no features. Answer with a delta.")
SOURCE_CONTEXT = 1  # lines either side of an error's line
MESSAGE_CHARS = 500
LINE_CHARS = 300
# tsc (pretty or not), esbuild/Vite and node/rollup locations: `src/a.tsx(3,7): error TS..`, `src/a.tsx:3:7 - error`,
# `✘ [ERROR] ... src/a.tsx:3:7:`; only relative project paths (never an absolute path of the droplet).
_LOC = re.compile(r"(?P<file>(?![/\\])[\w.@+-][\w./@+-]*\.(?:[cm]?[jt]sx?|vue|svelte|css|html|json))"
                  r"(?:\((?P<l1>\d+),(?P<c1>\d+)\)|:(?P<l2>\d+):(?P<c2>\d+))(?::|\s*-)?\s*(?P<msg>.*)")


# -- the request ---------------------------------------------------------------------------------------------------

def _source_lines(files: dict[str, str], path: str, line: int) -> list[str]:
    text = files.get(path)
    if text is None or line <= 0:
        return []
    lines = text.splitlines()
    lo, hi = max(1, line - SOURCE_CONTEXT), min(len(lines), line + SOURCE_CONTEXT)
    return [f"{n:>4}{'>' if n == line else ' '} {lines[n - 1][:LINE_CHARS]}" for n in range(lo, hi + 1)]


def _errors_from_log(lines: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in lines:
        if "rror" not in raw and "RROR" not in raw:
            continue
        m = _LOC.search(raw)
        if m is None or ".." in m.group("file").split("/"):
            continue
        line = int(m.group("l1") or m.group("l2"))
        col = int(m.group("c1") or m.group("c2"))
        msg = re.sub(r"^(?:-\s*)?", "", m.group("msg")).strip() or raw.strip()
        out.append({"file": m.group("file"), "line": line, "column": col,
                    "location": f"{m.group('file')}:{line}:{col}", "message": msg[:MESSAGE_CHARS]})
    return out


def _check_errors(v: ProjectVersion) -> list[dict[str, Any]]:
    record = json.loads(v.checks) if v.checks else {}
    out: list[dict[str, Any]] = []
    for check in (record or {}).values():
        if not isinstance(check, dict) or check.get("status") != "fail":
            continue
        for d in check.get("diagnostics") or []:
            if isinstance(d, dict) and d.get("severity", "error") == "error":
                out.append({k: d.get(k) for k in ("file", "line", "column", "location", "message")})
    return out


def build_request(rt: Runtime, v: ProjectVersion) -> dict[str, Any]:
    """The repair request of a failed (or badly rendering) version: compact and capped by [repair]."""
    cfg = rt.cfg.repair
    # The tools' own lines only: the daemon's ("[previewd <time>] ...") name the droplet's paths and repeat the
    # failure; a droplet path a tool printed is shown relative to the project.
    work = rt.layout.workspace(v.user_id, v.project_id)
    here = ((f"{work}/", ""), (str(work), "."), (str(rt.layout.store_dir), "<store>"), (str(rt.data_dir), "<data>"))
    tail = []
    for raw in read_tail(rt.layout.log_path(v.version_id), 400):
        line = strip_ansi(raw)
        if not line.strip() or line.startswith("[previewd "):
            continue
        for path, shown in here:
            line = line.replace(path, shown)
        tail.append(line[:LINE_CHARS])
    errors = _check_errors(v) or _errors_from_log(tail)
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for e in errors:
        key = (e.get("file"), e.get("line"), e.get("message"))
        if key not in seen:
            seen.add(key)
            unique.append(e)
    errors = unique[:cfg.max_errors]
    wanted = {str(e["file"]) for e in errors if e.get("file")}
    files: dict[str, str] = {}
    if wanted:
        try:
            got = rt.repo(v.user_id, v.project_id).files(v.version_id, admit=lambda p, size: p in wanted)
            files = {p: b.decode("utf-8", "replace") for p, b in got.items()}
        except Exception:  # sources unreadable: the request goes without its source lines
            log.warning("repair request of %s: sources unreadable", v.version_id, exc_info=True)
    for e in errors:
        e["source"] = _source_lines(files, str(e.get("file") or ""), int(e.get("line") or 0))
    req: dict[str, Any] = {
        "versionId": v.version_id,
        "reason": v.failure_reason or ("render_" + str(v.render_status)),
        "message": strip_ansi(v.failure_message or "")[:MESSAGE_CHARS],
        "errors": errors,
        "firstError": error_line(tail),
        "logTail": tail[-cfg.log_lines:] if cfg.log_lines else [],
        "instruction": INSTRUCTION,
    }
    if v.status == "deployed" and v.render_status in RENDER_BROKEN:
        detail = json.loads(v.render_detail) if v.render_detail else {}
        req["render"] = {"status": v.render_status, "jsErrors": (detail.get("jsErrors") or [])[:cfg.max_errors],
                         "failedRequests": (detail.get("failedRequests") or [])[:cfg.max_errors],
                         "blank": bool(detail.get("blank"))}
        req["logTail"] = []  # the build passed: its log says nothing about the page
    req["fingerprint"] = fingerprint(req)
    return req


def fingerprint(req: dict[str, Any]) -> str:
    """What two attempts are compared by: the reason and the errors (or the first error line, or the render's)."""
    render = req.get("render") or {}
    basis = [req.get("reason"), [(e.get("file"), e.get("line"), e.get("message")) for e in req.get("errors") or []],
             None if req.get("errors") else req.get("firstError"), render.get("jsErrors"), render.get("blank")]
    return hashlib.sha256(json.dumps(basis, default=str).encode()).hexdigest()[:16]


def _weight(req: dict[str, Any]) -> int:
    render = req.get("render") or {}
    return len(req.get("errors") or []) + len(render.get("jsErrors") or [])


# -- the policy ----------------------------------------------------------------------------------------------------

def _state(v: ProjectVersion) -> dict[str, Any]:
    data = json.loads(v.repair) if v.repair else {}
    return data if isinstance(data, dict) else {}


def repairable(v: ProjectVersion) -> bool:
    """Whether the version's failure is one the generator can be asked to repair."""
    if v.status == "failed":
        return v.failure_reason in REPAIRABLE
    return v.status == "deployed" and v.render_status in RENDER_BROKEN


def _root(v: ProjectVersion) -> ProjectVersion:
    if v.repair_of:
        root = ProjectVersion.get_or_none(ProjectVersion.version_id == v.repair_of)
        if root is not None:
            return root
    return v


def _org(version_id: str) -> str | None:
    row = BuildUsage.get_or_none(BuildUsage.version_id == version_id)
    return row.org_id if row is not None else None


def budget_left(rt: Runtime, user_id: str, org_id: str | None) -> str | None:
    """None while the plan's monthly repair budget lasts; else why not (attempts or tokens spent)."""
    name, plan = quotas.plan_for(rt.cfg, user_id, org_id)
    if plan is None or not (plan.repair_attempts or plan.repair_tokens):
        return None
    attempts, tokens = quotas.repair_usage(user_id, quotas.current_month())
    if plan.repair_attempts and attempts >= plan.repair_attempts:
        return f"repair attempts this month: {attempts} of {plan.repair_attempts} on plan {name}"
    if plan.repair_tokens and tokens >= plan.repair_tokens:
        return f"repair tokens this month: {tokens} of {plan.repair_tokens} on plan {name}"
    return None


def _set_state(rt: Runtime, root: ProjectVersion, **fields: Any) -> ProjectVersion:
    state = {**_state(versions.get(root.version_id)), **fields}  # the row as it is now, not as the caller read it
    return versions.update(rt.outbox, root.version_id, repair=json.dumps(state))


def _stop(rt: Runtime, root: ProjectVersion, reason: str, attempts: int, last: ProjectVersion | None,
          detail: str = "") -> None:
    repaired = reason == "passed"
    v = _set_state(rt, root, status="done", attempts=attempts, outcome="repaired" if repaired else "failed",
                   stopReason=reason, detail=detail[:MESSAGE_CHARS] or None,
                   lastVersionId=last.version_id if last is not None else None,
                   repairedVersionId=last.version_id if repaired and last is not None else None)
    log.info("repair of %s ended: %s after %d attempt(s) %s", root.version_id, reason, attempts, detail)
    rt.events.publish(RepairEnded(v))
    rt.notify(root.version_id)


def create_attempt(rt: Runtime, failed: ProjectVersion, root: ProjectVersion, attempt: int) -> ProjectVersion:
    """The next attempt's version (queued): parent = `failed`, admitted like any build (rate caps, quotas, meter).
    Raises the admission's error (409 build_in_flight, 429 quota_exceeded, ...)."""
    org = _org(failed.version_id)
    if (spent := budget_left(rt, failed.user_id, org)) is not None:
        name, _plan = quotas.plan_for(rt.cfg, failed.user_id, org)
        raise QuotaExceeded(f"repair budget spent: {spent}", quota="repair", plan=name, retry_after=3600)
    return submit.admission(rt, failed.user_id, failed.project_id, "repair", org).create(
        prompt=root.prompt, framework=failed.framework, parent_version_id=failed.version_id,
        target_package=failed.target_package, repair_of=root.version_id, repair_attempt=attempt)


def on_outcome(rt: Runtime, version_id: str) -> str | None:
    """A build ended (failed; or deployed and render-checked): record its repair request, move the loop on.
    Returns the id of an attempt to queue, or None. Never raises (the worker calls it)."""
    try:
        return _on_outcome(rt, version_id)
    except Exception:
        log.exception("repair loop step failed for %s", version_id)
        return None


def _on_outcome(rt: Runtime, version_id: str) -> str | None:
    mode = rt.cfg.repair.mode
    v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
    if v is None or mode == "off":
        return None
    is_attempt = v.kind == "repair" and v.repair_of is not None
    root = _root(v)
    if not is_attempt and _state(v).get("optOut"):
        return None
    if v.status in ("deployed", "deploying") and not (v.status == "deployed" and v.render_status in RENDER_BROKEN):
        if is_attempt and _state(root).get("status") == "running":
            _stop(rt, root, "passed", int(v.repair_attempt or 0), v)
        return None
    if not repairable(v):
        if is_attempt and _state(root).get("status") == "running":
            reason = {"generation_failed": "cannot_repair", "invalid_output": "invalid_output"}.get(
                v.failure_reason or "", "not_repairable")
            _stop(rt, root, reason, int(v.repair_attempt or 0), v, f"{v.failure_reason}: {v.failure_message or ''}")
        return None
    req = build_request(rt, v)
    v = versions.update(rt.outbox, v.version_id, repair_request=json.dumps(req))
    if not is_attempt:
        if mode == "suggest":
            _set_state(rt, v, mode="suggest", status="suggested")
            return None
        _set_state(rt, v, mode="auto", status="running", attempts=0)
        return _next(rt, v, v, 1)
    state = _state(root)
    if state.get("status") != "running":  # a one-off attempt (suggest): it carries its own request, nothing more
        return None
    n = int(v.repair_attempt or 0)
    parent = ProjectVersion.get_or_none(ProjectVersion.version_id == v.parent_version_id)
    before = json.loads(parent.repair_request) if parent is not None and parent.repair_request else {}
    if before and (before.get("fingerprint") == req["fingerprint"] or _weight(req) > _weight(before)):
        _stop(rt, root, "no_progress", n, v, "the same diagnostics as the attempt before"
              if before.get("fingerprint") == req["fingerprint"] else "more errors than the attempt before")
        return None
    if n >= rt.cfg.repair.max_attempts:
        _stop(rt, root, "max_attempts", n, v)
        return None
    return _next(rt, v, root, n + 1)


def _next(rt: Runtime, failed: ProjectVersion, root: ProjectVersion, attempt: int) -> str | None:
    try:
        nxt = create_attempt(rt, failed, root, attempt)
    except QuotaExceeded as exc:
        _stop(rt, root, "budget", attempt - 1, failed if failed is not root else None, exc.message)
        return None
    except Conflict as exc:  # a newer build of the project came first: it supersedes the repair
        _stop(rt, root, "superseded", attempt - 1, failed if failed is not root else None, exc.message)
        return None
    except AppError as exc:
        _stop(rt, root, "refused", attempt - 1, failed if failed is not root else None, exc.message)
        return None
    _set_state(rt, root, attempts=attempt, lastVersionId=nxt.version_id)
    return nxt.version_id


def repair_now(rt: Runtime, queue: BuildQueue, version_id: str, user_id: str, project_id: str) -> ProjectVersion:
    """POST /versions/{id}/repair: one attempt of a failed version from its ready request (409 when it has none,
    429 past the budget); the attempt is queued and returned."""
    if rt.cfg.repair.mode == "off":
        raise Conflict("repair is off on this daemon ([repair] mode)", code="repair_off")
    v = versions.get(version_id)
    if v.user_id != user_id or v.project_id != project_id:
        raise NotFound(f"version {version_id} not found in project {project_id}", code="version_not_found")
    if not v.repair_request or not repairable(v):
        raise Conflict(f"version {version_id} has no repair request (status {v.status}, "
                       f"reason {v.failure_reason or v.render_status or 'none'})", code="not_repairable")
    rt.fleet.admit(user_id, project_id)
    root = _root(v)
    attempt = create_attempt(rt, v, root, int(v.repair_attempt or 0) + 1)
    if root.version_id == v.version_id or _state(root).get("status") != "running":
        _set_state(rt, root, lastVersionId=attempt.version_id, attempts=int(attempt.repair_attempt or 1))
    return submit.queued(rt, queue, attempt)


def pending(v: ProjectVersion) -> bool:
    """True while the loop of this (root) version still runs: its build answer waits for the outcome."""
    return _state(v).get("status") == "running"


def answer(v: ProjectVersion) -> dict[str, Any] | None:
    """The `repair` object of a build answer: attempts, outcome, stop reason (None: no loop ran)."""
    state = _state(v)
    if state.get("status") not in ("running", "done", "suggested"):
        return None
    return {"status": state.get("status"), "attempts": state.get("attempts", 0), "outcome": state.get("outcome"),
            "stopReason": state.get("stopReason"), "detail": state.get("detail"),
            "lastVersionId": state.get("lastVersionId"), "repairedVersionId": state.get("repairedVersionId")}


def webhook_body(v: ProjectVersion) -> dict[str, Any]:
    """What `[alerts] webhook_url` receives when a loop ends (`alert: repair_ended`): the root failure and the
    loop's `repair` object (attempts, outcome, stop reason)."""
    return {"alert": "repair_ended", "state": "ended", "versionId": v.version_id, "userId": v.user_id,
            "projectId": v.project_id, "failureReason": v.failure_reason or None,
            "renderStatus": v.render_status, "repair": answer(v)}
