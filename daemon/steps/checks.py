"""Static checks beside the bundle: the project's type check (`tsc`) and `eslint --max-warnings=0`, run in the
no-network code view after the install, parsed into a per-version record, and judged by `[build] checks`.

Long because it holds the whole feature apart from the pipeline: what applies to a project, the chain split of
`tsc -b && vite build`, both parsers, the session that runs beside the bundle, and the record/fail policy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sandbox
from daemon.project import frameworks
from daemon.project.failures import BuildFailed
from sandbox import safepath

KINDS = ("typecheck", "lint")
MAX_DIAGNOSTICS = 20
MAX_CONFIG = 1 << 20
MAX_ESLINT_JSON = 32 * 2**20
STATE_DIR = "checks"  # under the project's cache dir: incremental state kept between versions, never deployed
ESLINT_CONFIGS = ("eslint.config.js", "eslint.config.mjs", "eslint.config.cjs", "eslint.config.ts",
                  "eslint.config.mts", "eslint.config.cts", ".eslintrc.js", ".eslintrc.cjs", ".eslintrc.json",
                  ".eslintrc.yaml", ".eslintrc.yml", ".eslintrc")
SANDBOX_BREACHES = set(sandbox.BREACHES)
# `file(line,col): error TS1234: message` (tsc --pretty false) and the file-less `error TS5083: message`.
_TSC_AT = re.compile(r"^(?P<file>[^()\n]+)\((?P<line>\d+),(?P<col>\d+)\): (?P<sev>error|warning) "
                     r"(?P<code>TS\d+): (?P<msg>.*)$")
_TSC_BARE = re.compile(r"^(?P<sev>error|warning) (?P<code>TS\d+): (?P<msg>.*)$")
_TSC_FLAGS = {"-b", "--build", "--noEmit"}


@dataclass
class CheckResult:
    """One check's record: status pass | fail | skipped | error, counts, duration, first diagnostics."""

    kind: str
    status: str
    errors: int = 0
    warnings: int = 0
    duration_ms: int = 0
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    command: str = ""
    detail: str = ""
    reason: str = ""  # for status error: the sandbox's reason (memory_limit, timeout...) or exit_nonzero

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "errors": self.errors, "warnings": self.warnings,
                               "durationMs": self.duration_ms, "diagnostics": self.diagnostics}
        for key, val in (("command", self.command), ("detail", self.detail), ("reason", self.reason)):
            if val:
                out[key] = val
        return out


def _diag(file: str, line: int, col: int, message: str, rule: str, severity: str) -> dict[str, Any]:
    return {"location": f"{file}:{line}:{col}", "file": file, "line": line, "column": col,
            "message": message[:500], "rule": rule, "severity": severity}


# -- parsers -----------------------------------------------------------------------------------------------

def parse_tsc(lines: list[str]) -> tuple[int, int, list[dict[str, Any]]]:
    """(errors, warnings, first diagnostics) of `tsc --pretty false` output; continuation lines are joined."""
    errors = warnings = 0
    diags: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for raw in lines:
        line = raw.rstrip()
        m = _TSC_AT.match(line) or _TSC_BARE.match(line)
        if m is None:
            if last is not None and raw.startswith("  ") and len(last["message"]) < 500:
                last["message"] = (last["message"] + " " + line.strip())[:500]
            continue
        sev = m.group("sev")
        if sev == "error":
            errors += 1
        else:
            warnings += 1
        gd = m.groupdict()
        file = (gd.get("file") or "").strip()[:300]
        last = _diag(file, int(gd.get("line") or 0), int(gd.get("col") or 0), m.group("msg"), m.group("code"), sev)
        if len(diags) < MAX_DIAGNOSTICS:
            diags.append(last)
        else:
            last = None
    return errors, warnings, diags


def parse_eslint(text: str, work: Path) -> tuple[int, int, list[dict[str, Any]]] | None:
    """(errors, warnings, first diagnostics) of eslint's JSON formatter output; None when it is not that."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    errors = warnings = 0
    diags: list[dict[str, Any]] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        path = str(item.get("filePath") or "")
        rel = (os.path.relpath(path, work) if os.path.isabs(path) else path)[:300]
        for msg in item.get("messages") or []:
            if not isinstance(msg, dict):
                continue
            sev = "error" if msg.get("severity") == 2 or msg.get("fatal") else "warning"
            if sev == "error":
                errors += 1
            else:
                warnings += 1
            if len(diags) < MAX_DIAGNOSTICS:
                diags.append(_diag(rel, int(msg.get("line") or 0), int(msg.get("column") or 0),
                                   str(msg.get("message") or ""), str(msg.get("ruleId") or ""), sev))
    return errors, warnings, diags


# -- what applies ------------------------------------------------------------------------------------------

def read_jsonc(root: Path, rel: str) -> Any:
    """A tsconfig-style file (comments and trailing commas allowed), read without following links."""
    text = safepath.read_regular(root, rel.split("/"), MAX_CONFIG).decode("utf-8", "replace")
    out: list[str] = []
    i, n, in_str = 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "".join(out)))


def _bin(work: Path, name: str) -> Path | None:
    """The project's own node_modules/.bin/<name>, a regular file (pnpm's shim), never a link."""
    try:
        st = os.lstat(work / "node_modules" / ".bin" / name)
    except OSError:
        return None
    return work / "node_modules" / ".bin" / name if stat.S_ISREG(st.st_mode) else None


def _exists(work: Path, rel: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(work / rel).st_mode)
    except OSError:
        return False


def _references(config: Any) -> list[str]:
    refs = config.get("references") if isinstance(config, dict) else None
    out = []
    for r in refs or []:
        p = r.get("path") if isinstance(r, dict) else None
        if isinstance(p, str):
            out.append(p)
    return out


def _config_path(rel: str) -> str:
    """A reference's tsconfig path relative to the workspace (a directory means its tsconfig.json)."""
    rel = os.path.normpath(rel)
    return rel if rel.endswith(".json") else os.path.join(rel, "tsconfig.json")


def _emits_nothing(work: Path, rel: str, depth: int = 0) -> bool:
    """True when `tsc -b` on this config (and every config it references) is known to write no JS beside the
    sources: each says noEmit (or has no files). Unknown (extends, unreadable) counts as emitting."""
    if depth > 8 or rel.startswith("..") or os.path.isabs(rel):
        return False
    try:
        config = read_jsonc(work, rel)
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    raw_opts = config.get("compilerOptions")
    opts: dict[str, Any] = raw_opts if isinstance(raw_opts, dict) else {}
    empty = config.get("files") == [] and "include" not in config
    if not empty and opts.get("noEmit") is not True:
        return False
    base = os.path.dirname(rel)
    return all(_emits_nothing(work, _config_path(os.path.join(base, r)), depth + 1) for r in _references(config))


@dataclass
class Plan:
    """What runs: each check's argv (None: skipped, with why), and the split of the build script if any."""

    typecheck: list[str] | None = None
    lint: list[str] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    bundle: str | None = None  # the build script without its type check, when the chain is split
    split_note: str = ""


def _build_script(work: Path) -> tuple[str | None, dict[str, Any]]:
    try:
        pkg = json.loads(safepath.read_regular(work, ["package.json"], MAX_CONFIG))
    except (OSError, ValueError):
        return None, {}
    scripts = pkg.get("scripts") if isinstance(pkg, dict) else None
    if not isinstance(scripts, dict):
        return None, {}
    build = scripts.get("build")
    return (build if isinstance(build, str) else None), scripts


def split_chain(work: Path, script: str, scripts: dict[str, Any]) -> tuple[list[str], str] | str:
    """(the type check's tsc flags, the rest of the chain) when the build script is `tsc [-b|--noEmit] && rest`
    and the type check writes nothing the rest could read; else why the script runs as written."""
    head, sep, rest = script.partition("&&")
    if not sep or not rest.strip():
        return "the build script is not a `tsc ... && ...` chain"
    try:
        tokens = shlex.split(head)
    except ValueError:
        return "the build script does not parse"
    if not tokens or tokens[0] != "tsc" or not set(tokens[1:]) <= _TSC_FLAGS:
        return "the build script does not start with a plain `tsc`, `tsc -b` or `tsc --noEmit`"
    if "prebuild" in scripts or "postbuild" in scripts:
        return "the project has prebuild/postbuild scripts"
    flags = tokens[1:]
    build_mode = "-b" in flags or "--build" in flags
    if "--noEmit" in flags and not build_mode:
        return flags, rest.strip()
    if not _emits_nothing(work, "tsconfig.json"):
        return "its tsc may write files the bundle reads (no noEmit in every tsconfig it builds)"
    return flags, rest.strip()


def plan(work: Path, policy: str, outputs: tuple[str, ...] = ()) -> Plan:
    """Which checks apply to the workspace (after the install), and whether the build script is split.
    `outputs` are the build's output dirs: never linted (the bundle may be writing them)."""
    p = Plan()
    if policy == "off":
        p.skipped = {k: "[build] checks = \"off\"" for k in KINDS}
        return p
    tsc = _bin(work, "tsc")
    if not _exists(work, "tsconfig.json"):
        p.skipped["typecheck"] = "no tsconfig.json"
    elif tsc is None:
        p.skipped["typecheck"] = "typescript is not installed (no node_modules/.bin/tsc)"
    eslint = _bin(work, "eslint")
    if not any(_exists(work, c) for c in ESLINT_CONFIGS):
        p.skipped["lint"] = "no eslint config"
    elif eslint is None:
        p.skipped["lint"] = "eslint is not installed (no node_modules/.bin/eslint)"
    else:
        p.lint = [str(eslint), ".", "--max-warnings=0", "--format", "json", "--cache", "--cache-location",
                  "@STATE@/eslintcache", "--output-file", "@STATE@/eslint.json"]
        for rel in outputs:
            if rel not in frameworks.SOURCE_DIRS:
                p.lint += ["--ignore-pattern", f"{rel}/"]
    if "typecheck" in p.skipped or tsc is None:
        return p
    script, scripts = _build_script(work)
    split = split_chain(work, script, scripts) if script else "no build script"
    if isinstance(split, tuple):
        flags, p.bundle = split
        p.split_note = (f"build script `{script}` split: `tsc {' '.join(flags)}` runs as the type check beside "
                        f"the bundle `{p.bundle}`")
    else:
        p.split_note = f"build script runs as written ({split})"
        try:
            refs = _references(read_jsonc(work, "tsconfig.json"))
        except (OSError, ValueError):
            refs = []
        flags = ["-b"] if refs else ["--noEmit"]
        if refs and not _emits_nothing(work, "tsconfig.json"):
            # `tsc -b` would write JS beside the sources, and the next snapshot would take it for sources.
            p.skipped["typecheck"] = "tsc -b would write files (project references without noEmit in every tsconfig)"
            return p
    if "-b" in flags or "--build" in flags:
        # Build mode keeps its state where each tsconfig says (the templates: node_modules/.tmp, kept).
        p.typecheck = [str(tsc), *flags, "--pretty", "false"]
    else:
        p.typecheck = [str(tsc), *flags, "--pretty", "false", "--incremental", "--tsBuildInfoFile",
                       "@STATE@/tsconfig.tsbuildinfo"]
    return p


# -- running -----------------------------------------------------------------------------------------------

RunCode = Callable[[list[str], Callable[[str], None]], sandbox.Result]


def _run_one(kind: str, argv: list[str], run_code: RunCode, state: Path, work: Path) -> CheckResult:
    argv = [a.replace("@STATE@", str(state)) for a in argv]
    shown = " ".join([Path(argv[0]).name, *argv[1:]]).replace(str(state), "<cache>")
    lines: list[str] = []
    t0 = time.monotonic()
    if kind == "lint":
        safepath.remove_tree(state.parent, [state.name, "eslint.json"])
    try:
        res = run_code(argv, lines.append)
    except (OSError, ValueError, sandbox.SandboxError) as exc:
        return CheckResult(kind, "error", command=shown, detail=f"could not start: {exc}"[:500], reason="error",
                           duration_ms=int((time.monotonic() - t0) * 1000))
    ms = int((time.monotonic() - t0) * 1000)
    out = CheckResult(kind, "pass", duration_ms=ms, command=shown)
    if res.reason == "cancelled":
        out.status, out.reason, out.detail = "error", "cancelled", "the daemon shut down"
        return out
    if res.reason in SANDBOX_BREACHES:
        out.status, out.reason, out.detail = "error", res.reason, res.detail
        return out
    if kind == "typecheck":
        out.errors, out.warnings, out.diagnostics = parse_tsc(lines)
    else:
        try:
            text = safepath.read_regular(state, ["eslint.json"], MAX_ESLINT_JSON).decode("utf-8", "replace")
        except (OSError, ValueError):
            text = ""
        parsed = parse_eslint(text, work) if text else None
        if parsed is not None:
            out.errors, out.warnings, out.diagnostics = parsed
        elif res.exit_code != 0:
            out.status, out.reason = "error", "exit_nonzero"
            out.detail = ("eslint could not lint: " + " | ".join(lines[-5:]))[:500]
            return out
    if res.exit_code == 0 and out.errors == 0 and out.warnings == 0:
        return out
    if out.errors or out.warnings:
        out.status = "fail"
    else:
        out.status, out.reason = "error", "exit_nonzero"
        out.detail = (f"exited {res.exit_code} without diagnostics: " + " | ".join(lines[-5:]))[:500]
    return out


class Session:
    """The checks of one build, running in a thread of their own beside (or after) the bundle."""

    def __init__(self, p: Plan, run_code: RunCode, state: Path, work: Path) -> None:
        self.plan = p
        self.results: dict[str, CheckResult] = {k: CheckResult(k, "skipped", detail=why)
                                                for k, why in p.skipped.items()}
        self._run_code, self._state, self._work = run_code, state, work
        self._thread: threading.Thread | None = None
        self.started = 0.0
        self.elapsed_ms = 0

    def start(self) -> Session:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._work_all, name="previewd-checks", daemon=True)
        self._thread.start()
        return self

    def _work_all(self) -> None:
        for kind, argv in (("typecheck", self.plan.typecheck), ("lint", self.plan.lint)):
            if argv is None or kind in self.results:
                continue
            try:
                self.results[kind] = _run_one(kind, argv, self._run_code, self._state, self._work)
            except Exception as exc:  # a check that cannot run is an `error`, never a crash of the build
                self.results[kind] = CheckResult(kind, "error", detail=f"{type(exc).__name__}: {exc}"[:500],
                                                 reason="error")
        self.elapsed_ms = int((time.monotonic() - self.started) * 1000)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> dict[str, Any]:
        """Block until every check ended; the record `{typecheck: {...}, lint: {...}}`."""
        if self._thread is not None:
            self._thread.join()
        return {k: self.results.get(k, CheckResult(k, "skipped")).as_dict() for k in KINDS}


class Pending:
    """The owner of every checks thread. While its build runs, a build's running `Session` (by version, `begin`
    to `take`: at most the builds in flight). After its version went live (`record`), the checks' recording, per
    project: it runs in a thread of its own, so the worker takes the next build at once; the project's own next
    build waits for it before it touches the workspace (after its generation, which usually hides the wait).
    Ended recordings are pruned as new ones come, so the map holds the projects with checks still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[tuple[str, str], threading.Thread] = {}
        self._sessions: dict[str, Session] = {}

    def begin(self, version_id: str, session: Session) -> None:
        """The build's checks started."""
        with self._lock:
            self._sessions[version_id] = session

    def running(self, version_id: str) -> bool:
        """The build has checks not yet taken (running, or ended and not recorded)."""
        with self._lock:
            return version_id in self._sessions

    def take(self, version_id: str) -> Session | None:
        """The build's checks, now the caller's to wait for and record (None when none, or taken already)."""
        with self._lock:
            return self._sessions.pop(version_id, None)

    def add(self, key: tuple[str, str], fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, name="previewd-checks-record", daemon=True)
        with self._lock:
            for k in [k for k, old in self._threads.items() if not old.is_alive()]:
                del self._threads[k]
            self._threads[key] = t
        t.start()

    def alive(self) -> bool:
        """A checks thread (a session's or a recording's) still runs."""
        with self._lock:
            threads = list(self._threads.values())
            sessions = list(self._sessions.values())
        return any(t.is_alive() for t in threads) or any(s.alive() for s in sessions)

    def size(self) -> tuple[int, int]:
        """(sessions, recordings) held: the registry's bound, for tests."""
        with self._lock:
            return len(self._sessions), len(self._threads)

    def wait(self, key: tuple[str, str], say: Callable[[str], None]) -> None:
        """Block until the project's previous checks are recorded."""
        with self._lock:
            t = self._threads.pop(key, None)
        if t is not None and t.is_alive():
            t0 = time.monotonic()
            say("waiting for the previous version's checks to end (they read the workspace)")
            t.join()
            say(f"the previous version's checks ended after {time.monotonic() - t0:.1f}s")

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for every pending recording (shutdown, tests); True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


def skipped_record(p: Plan) -> dict[str, Any]:
    """The record of a build where no check applies (each says why)."""
    return {k: CheckResult(k, "skipped", detail=p.skipped.get(k, "")).as_dict() for k in KINDS}


def summary_lines(record: dict[str, Any]) -> list[str]:
    """Log lines for a record: one per check, then its first diagnostics."""
    out = []
    for kind in KINDS:
        c = record.get(kind) or {}
        head = f"check {kind}: {c.get('status')}"
        if c.get("status") in ("pass", "fail"):
            head += f" ({c.get('errors', 0)} errors, {c.get('warnings', 0)} warnings, {c.get('durationMs', 0)} ms)"
        if c.get("detail"):
            head += f": {c['detail']}"
        out.append(head)
        out += [f"  {d['location']}: {d['message']}" for d in (c.get("diagnostics") or [])[:5]]
    return out


def judge(policy: str, record: dict[str, Any]) -> None:
    """Under `fail`: BuildFailed when a check did not pass (a check stopped by a limit fails with that limit's
    reason, any other failure with `check_failed`)."""
    if policy != "fail":
        return
    bad = [(k, record[k]) for k in KINDS if (record.get(k) or {}).get("status") in ("fail", "error")]
    if not bad:
        return
    for kind, c in bad:
        if c.get("reason") in SANDBOX_BREACHES:
            raise BuildFailed(c["reason"], f"{kind} stopped: {c.get('detail', '')}")
    parts = []
    for kind, c in bad:
        first = (c.get("diagnostics") or [{}])[0]
        where = f"; first: {first['location']}: {first['message']}" if first.get("location") else ""
        parts.append(f"{kind} {c['status']} ({c.get('errors', 0)} errors, {c.get('warnings', 0)} warnings){where}")
    raise BuildFailed("check_failed", "[build] checks = \"fail\": " + "; ".join(parts))


def failed_kinds(record: dict[str, Any]) -> list[str]:
    """The kinds that did not pass (fail or error): what /metrics counts."""
    return [k for k in KINDS if (record.get(k) or {}).get("status") in ("fail", "error")]


def bundle_argv(bundle: str) -> list[str]:
    """The rest of a split chain, run the way `pnpm run` runs a script (sh -c, the project's .bin on PATH)."""
    return ["sh", "-c", bundle]


def bundle_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """The build step's environment as `pnpm run build` gives it: node_modules/.bin first on PATH."""
    out = dict(env)
    out["PATH"] = f"{work / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    out["npm_lifecycle_event"] = "build"
    out["npm_command"] = "run-script"
    return out


def state_dir(cache: Path) -> Path:
    """The project's check state (eslint cache, a non-build tsc's tsbuildinfo): in its cache dir, kept."""
    return safepath.ensure_dir(cache, [STATE_DIR])
