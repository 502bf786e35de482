"""The ``cloudflare`` deployer: uploads with ``wrangler pages deploy``, asks the Pages API for status."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from daemon.deployers.base import DeployError, Deployment, DeployRequest
from daemon.deployers.cloudflare.branches import ProjectsSource, branch_alias_url, branch_conflict, live_branch
from daemon.deployers.cloudflare.pages_api import (
    DEFAULT_API_BASE,
    PagesApi,
    PagesApiError,
    PagesNotFound,
    deployment_state,
    redact,
)

COMMIT_MESSAGE_MAX = 200
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# "Take a peek over at" when wrangler saw the final stage, "Visit your deployment at" when it gave up polling.
_PEEK = re.compile(r"(?:Take a peek over at|Visit your deployment at)\s+(https?://\S+)")
# Banner and boilerplate lines that say nothing about why a deploy failed.
_NOISE = re.compile(r"^(?:⛅️|─+$|🪵|If you think this is a bug|Uploading\.\.\.)")
_ALIAS = re.compile(r"Deployment alias URL:\s+(https?://\S+)")
_BRANCH_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,243}$")
_PROJECT_OK = re.compile(r"^[a-z0-9][a-z0-9-]{0,57}$")
_LEVEL = re.compile(r"^(?:✘|▲)\s*\[(?:ERROR|WARNING)\]\s*")
_FAILURE_TAIL_LINES = 8


def commit_message(prompt: str, version_id: str) -> str:
    """The prompt as one line of at most COMMIT_MESSAGE_MAX characters (wrangler would ask git otherwise)."""
    line = " ".join(prompt.split())
    if len(line) > COMMIT_MESSAGE_MAX:
        line = line[: COMMIT_MESSAGE_MAX - 3].rstrip() + "..."
    return line or f"version {version_id}"


def _read_output_file(path: Path) -> list[dict[str, Any]]:
    """Parse wrangler's ND-JSON output file, skipping lines that are not JSON objects."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _last(entries: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    found = [e for e in entries if e.get("type") == kind]
    return found[-1] if found else None


def _failure_message(entries: list[dict[str, Any]], lines: list[str]) -> str:
    """The command-failed entry's message and code, plus the printed lines that explain it.

    Wrangler's entry says only which request failed; Cloudflare's reason ("Project not found ...
    [code: 8000007]") is only printed, so both are kept.
    """
    parts: list[str] = []
    failed = _last(entries, "command-failed")
    if failed and failed.get("message"):
        code = failed.get("code")
        parts.append(str(failed["message"]) + (f" [code {code}]" if code not in (None, "") else ""))
    stripped = (_LEVEL.sub("", ln.strip()) for ln in lines)
    meaningful = [ln for ln in stripped if ln and not _NOISE.match(ln)]
    for line in meaningful[-_FAILURE_TAIL_LINES:]:
        if not any(line in p for p in parts):
            parts.append(line)
    return " | ".join(parts) or "no output"


class CloudflareDeployer:
    """Deploys to one Cloudflare Pages project; confirmation arrives later (webhook or ``status``)."""

    name = "cloudflare"
    serves_previews = False
    supports_alias = True  # the project's live branch (live_branch)
    counts_pages_quota = True
    records_deployment_id = True

    def __init__(
        self,
        account_id: str,
        api_token: str,
        project_name: str,
        *,
        wrangler: Sequence[str] = ("wrangler",),
        api_base: str = DEFAULT_API_BASE,
        branch_for: Callable[[DeployRequest], str] | None = None,
        projects: ProjectsSource | None = None,
        timeout_s: float = 300,
        http: httpx.Client | None = None,
    ) -> None:
        if not account_id or not api_token or not project_name:
            raise ValueError("cloudflare deployer needs account_id, api_token and project_name")
        if not _PROJECT_OK.match(project_name):
            raise ValueError(f"invalid Pages project name {project_name!r} (lowercase letters, digits, '-')")
        if not wrangler:
            raise ValueError("wrangler command must not be empty")
        self.account_id = account_id
        self.project_name = project_name
        self._token = api_token
        first = wrangler[0]
        # wrangler runs in a scratch cwd, so a relative path must be pinned to ours now.
        if os.sep in first and not os.path.isabs(first):
            first = os.path.abspath(first)
        self._wrangler = (first, *wrangler[1:])
        self._api_base = api_base.rstrip("/")
        self._branch_for = branch_for
        self._projects = projects  # the fleet's projects, for the live branch guard (branches.branch_conflict)
        self._timeout_s = timeout_s
        self.api = PagesApi(account_id, api_token, project_name, api_base=api_base, http=http)

    def alias_url(self, user_id: str, project_id: str) -> str | None:
        """The project's live branch alias; None when that branch is another project's (branch_conflict)."""
        if branch_conflict(user_id, project_id, self._projects) is not None:
            return None  # its branch is another project's: that alias is not this project's address
        return branch_alias_url(live_branch(user_id, project_id), self.project_name)

    def close(self) -> None:
        """Release the HTTP client (when this deployer created it)."""
        self.api.close()

    # -- deploy -------------------------------------------------------------------------------------

    def _env(self, home: Path, output_file: Path) -> dict[str, str]:
        """Only what wrangler needs: no daemon secret beyond its own token reaches the process."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(home),
            "CLOUDFLARE_API_TOKEN": self._token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
            "WRANGLER_OUTPUT_FILE_PATH": str(output_file),
            "WRANGLER_SEND_METRICS": "false",
            "CI": "true",
        }
        if self._api_base != DEFAULT_API_BASE:
            env["CLOUDFLARE_API_BASE_URL"] = self._api_base
        return env

    def _branch(self, req: DeployRequest) -> str:
        # Every version of a project goes to its live branch, so the branch alias serves what went live last.
        branch = self._branch_for(req) if self._branch_for else live_branch(req.user_id, req.project_id)
        if not _BRANCH_OK.match(branch):
            raise DeployError(f"invalid Pages branch name {branch!r}")
        return branch

    def _argv(self, req: DeployRequest, branch: str) -> list[str]:
        # --flag=value throughout: a prompt starting with '-' must not be read as another flag.
        return [
            *self._wrangler,
            "pages",
            "deploy",
            str(req.out_dir.resolve()),
            f"--project-name={self.project_name}",
            f"--branch={branch}",
            f"--commit-hash={req.version_id}",
            f"--commit-message={commit_message(req.message, req.version_id)}",
            "--commit-dirty=true",
        ]

    def _run(self, argv: list[str], env: dict[str, str], cwd: Path, log: Callable[[str], None]) -> list[str]:
        """Run wrangler in its own process group, streaming redacted output to ``log``; return the lines."""
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise DeployError(
                redact(f"cannot start wrangler ({argv[0]}): {exc.strerror or exc}", self._token)
            ) from None
        lines: list[str] = []
        stdout = proc.stdout
        assert stdout is not None
        # A helper thread reads the pipe; ``log`` is only ever called from the caller's thread, before return.
        pipe: queue.SimpleQueue[str | None] = queue.SimpleQueue()

        def pump() -> None:
            try:
                for raw in stdout:
                    pipe.put(redact(_ANSI.sub("", raw.decode("utf-8", errors="replace")).rstrip(), self._token))
            finally:
                pipe.put(None)

        def emit(line: str) -> None:
            lines.append(line)
            if line.strip():
                log(line)

        reader = threading.Thread(target=pump, name="wrangler-output", daemon=True)
        reader.start()
        deadline = time.monotonic() + self._timeout_s
        timed_out = False
        try:
            while True:
                try:
                    item = pipe.get(timeout=max(0.0, min(deadline - time.monotonic(), 0.2)))
                except queue.Empty:
                    if time.monotonic() >= deadline:
                        timed_out = True
                        break
                    if proc.poll() is not None:
                        break  # wrangler exited; a lingering grandchild may still hold the pipe open
                    continue
                if item is None:
                    break
                emit(item)
            if not timed_out:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            # Nothing wrangler started may outlive the deploy (and hold the pipe open).
            self._kill_group(proc)
        reader.join(timeout=5)
        while True:
            try:
                item = pipe.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                emit(item)
        if not reader.is_alive():  # never close the pipe under a blocked reader
            stdout.close()
        if timed_out:
            raise DeployError(
                f"wrangler timed out after {self._timeout_s:g}s and was killed"
                + (f"; last output: {lines[-1].strip()}" if lines else "")
            )
        if proc.returncode != 0:
            raise _WranglerExit(proc.returncode, lines)
        return lines

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.wait()

    def deploy(self, req: DeployRequest, log: Callable[[str], None]) -> Deployment:
        """Upload ``req.out_dir`` with wrangler; return a ``pending`` Deployment with its id and URL."""
        if not req.out_dir.is_dir():
            raise DeployError(f"build output {req.out_dir} is not a directory")
        branch = self._branch(req)
        argv = self._argv(req, branch)
        with tempfile.TemporaryDirectory(prefix="previewd-wrangler-") as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            output_file = Path(tmp) / "wrangler-output.ndjson"
            log(f"wrangler pages deploy -> project {self.project_name}, branch {branch}")
            try:
                lines = self._run(argv, self._env(home, output_file), Path(tmp), log)
            except _WranglerExit as exc:
                message = _failure_message(_read_output_file(output_file), exc.lines)
                raise DeployError(
                    redact(f"wrangler exited with code {exc.returncode}: {message}", self._token)
                ) from None
            entries = _read_output_file(output_file)
        return self._result(req, entries, lines, log)

    def _result(
        self, req: DeployRequest, entries: list[dict[str, Any]], lines: list[str], log: Callable[[str], None]
    ) -> Deployment:
        if _last(entries, "command-failed"):
            message = _failure_message(entries, lines)
            raise DeployError(redact(f"wrangler reported failure: {message}", self._token))
        entry = _last(entries, "pages-deploy-detailed") or _last(entries, "pages-deploy")
        if entry and entry.get("deployment_id") and entry.get("url"):
            alias = entry.get("alias")
            return Deployment(
                deployment_id=str(entry["deployment_id"]),
                url=str(entry["url"]),
                state="pending",
                detail=f"alias {alias}" if alias else "",
            )
        # Old wranglers print only the URL: recover the deployment id from the API by commit hash.
        text = "\n".join(lines)
        peek = _PEEK.search(text)
        if not peek:
            raise DeployError("wrangler exited 0 but reported no deployment (no output entry, no URL printed)")
        url = peek.group(1)
        alias = _ALIAS.search(text)
        log("wrangler wrote no output file; looking the deployment up by commit hash")
        deployment_id = self._find_by_commit(req.version_id, url)
        return Deployment(
            deployment_id=deployment_id,
            url=url,
            state="pending",
            detail=f"alias {alias.group(1)}" if alias else "",
        )

    def _find_by_commit(self, version_id: str, url: str) -> str:
        """Find the newest deployment whose commit hash is ``version_id`` (or whose URL matches)."""
        try:
            recent = self.api.list_deployments(page=1, per_page=25)
        except PagesApiError as exc:
            raise DeployError(f"wrangler printed {url} but the deployment id lookup failed: {exc.message}") from None
        for dep in recent:
            meta = (dep.get("deployment_trigger") or {}).get("metadata") or {}
            if meta.get("commit_hash") == version_id or dep.get("url") == url:
                return str(dep["id"])
        raise DeployError(f"wrangler printed {url} but no deployment with commit hash {version_id} was found")

    # -- status / delete -----------------------------------------------------------------------------

    def status(self, deployment_id: str) -> Deployment:
        """Ask the Pages API; PagesApiError (a DeployError) with ``retryable`` set on 429/5xx/network."""
        dep = self.api.get_deployment(deployment_id)
        latest = dep.get("latest_stage")
        latest = latest if isinstance(latest, dict) else {}
        return Deployment(
            deployment_id=str(dep.get("id") or deployment_id),
            url=str(dep.get("url") or ""),
            state=deployment_state(dep),
            detail=f"{latest.get('name', '?')}:{latest.get('status', '?')}",
        )

    def delete(self, deployment_id: str) -> None:
        """Delete with ``force=true`` (aliased deployments need it); an already missing one is fine."""
        try:
            self.api.delete_deployment(deployment_id, force=True)
        except PagesNotFound:
            return


class _WranglerExit(Exception):
    """Internal: wrangler exited non-zero; carries its output for the error message."""

    def __init__(self, returncode: int, lines: list[str]) -> None:
        super().__init__(returncode)
        self.returncode = returncode
        self.lines = lines
