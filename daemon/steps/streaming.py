"""A first build's generation streamed into the pipeline: each file the generator hands over is checked by the
contract's path rules and written into the workspace at once, and the install starts as soon as package.json is
complete, in its own view exactly as the install step runs it (daemon/steps/install.py).

What was streamed is a head start, never the record: the Write step rewrites the workspace from the validated
contract, and keeps the install only when the dependency inputs it ran on (package.json after the daemon's policy,
the workspace file) are those of the final file set; otherwise the install is done again, said in the log. A bad
path fails the version (invalid_output) before anything is written, and nothing is written outside the workspace.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import threading
import time
from pathlib import Path

from daemon.core.contract import WORKSPACE_FILE, ContractError, ContractLimits, check_path
from daemon.project import netconfig
from daemon.project.failures import BuildFailed
from daemon.project.workspace import WorkspaceError, write_file
from daemon.steps import install, scripts, write
from daemon.steps.context import BuildContext, StepTimes


class Streamed:
    """The sink a streaming generator writes into (``on_file``, in the generator's thread), and the install it
    starts (its own thread). The Write step ends it (``finish``) and decides whether the install holds (``adopt``)."""

    def __init__(self, ctx: BuildContext) -> None:
        g = ctx.rt.cfg.generator
        self.ctx = ctx
        self.limits = ContractLimits(max_files=g.max_files, max_file_bytes=g.max_file_bytes,
                                     max_total_bytes=g.max_total_bytes)
        self.sizes: dict[str, int] = {}
        self.pending: dict[str, str] = {}  # files held while the install walks the workspace
        # Held by the install while it walks the workspace (its purge before pnpm, its checks after): a file
        # written then would race the walk. Writes wait in `pending` meanwhile, never the generator.
        self.walks = threading.Lock()
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None
        self.early: BuildContext | None = None  # the install's own view of the build (its files: package.json)
        self.failure: BaseException | None = None
        self.install_ms = 0
        self.nm_bytes = 0
        self.accepted = False
        self.declined = False  # package.json came but the install waits for the whole contract

    # -- the generator's side ------------------------------------------------------------------------------

    def on_file(self, path: str, content: str) -> None:
        """One file of the answer: checked, then written (or held while the install walks the workspace)."""
        if self.ctx.cancel.is_set():
            self.cancel.set()
        path = check_path(path, self.limits, "streamed file path")
        try:
            size = len(content.encode("utf-8"))
        except UnicodeEncodeError:
            raise ContractError(f"{path!r} is not valid Unicode text (lone surrogate)", "streamed file content") \
                from None
        if size > self.limits.max_file_bytes:
            raise ContractError(f"{path!r} is {size} bytes, over the cap of {self.limits.max_file_bytes}",
                                "streamed file content")
        self.sizes[path] = size
        if len(self.sizes) > self.limits.max_files:
            raise ContractError(f"more than {self.limits.max_files} files", "streamed files")
        if sum(self.sizes.values()) > self.limits.max_total_bytes:
            raise ContractError(f"more than {self.limits.max_total_bytes} bytes in all", "streamed files")
        name = path.rsplit("/", 1)[-1]
        if path == WORKSPACE_FILE or netconfig.is_foreign(name, at_root="/" not in path):
            return  # install policy: the Write step decides what of these reaches the workspace
        if path == "package.json":
            if self.thread is None and not self.declined:
                self._start_install(content)
            return  # the install runs on the first one; the Write step writes the final one
        self.pending[path] = content
        if self.walks.acquire(blocking=False):
            try:
                self._flush()
            finally:
                self.walks.release()

    def _flush(self) -> None:
        work = self._work()
        while self.pending:
            path, content = next(iter(self.pending.items()))
            try:
                write_file(work, path, content)
            except WorkspaceError as exc:
                raise ContractError(exc.message, "streamed file path") from None
            except OSError as exc:
                if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
                    raise ContractError(f"{path!r} is a file and a folder at once", "streamed file path") from None
                raise BuildFailed("build_failed", f"writing {path}: {exc.strerror}") from None
            del self.pending[path]

    def _work(self) -> Path:
        dirs = self.ctx.dirs
        if dirs is None:
            raise RuntimeError("streamed files before the prepare step")  # a wrong step order
        dirs.work.mkdir(parents=True, exist_ok=True)
        return dirs.work

    def _start_install(self, package_json: str) -> None:
        """Settle the sandboxing for package.json alone, write the daemon's files, and start the install."""
        ctx, blog = self.ctx, self.ctx.log
        own = _own_install_scripts(package_json)
        if own:
            self.declined = True
            blog.step(f"install: waits for the whole answer (package.json runs its own {', '.join(own)})")
            return
        early = dataclasses.replace(ctx, files={"package.json": package_json}, cancel=self.cancel,
                                    times=StepTimes(), sandboxing=None, mono=None, reusable=None, target_hint=None,
                                    streamed=None)
        try:
            write.settle(early)
        except (BuildFailed, ContractError) as exc:  # the Write step meets it again with the final package.json
            self.declined = True
            blog.step(f"install: waits for the whole answer ({exc})")
            return
        ctx.pending_checks.wait((ctx.v.user_id, ctx.v.project_id), blog.step)
        work = early.box.dirs.work
        for rel, text in early.files.items():  # package.json under the daemon's policy, its workspace file
            try:
                write_file(work, rel, text)
            except (OSError, WorkspaceError) as exc:
                raise BuildFailed("build_failed", f"writing {rel}: {exc}") from None
        write.make_home(early)
        self.early = early
        blog.step("install: started while the generator writes (package.json complete)")
        self.thread = threading.Thread(target=self._install, args=(early,), name="streamed-install", daemon=True)
        self.thread.start()

    def _install(self, early: BuildContext) -> None:
        t0 = time.monotonic()
        try:
            install.reclaim_node_modules(early)
            install.install(early, walks=self.walks)
            self.nm_bytes = early.nm_bytes
        except BaseException as exc:  # judged by adopt(), against the final package.json
            self.failure = exc
        finally:
            self.install_ms = int((time.monotonic() - t0) * 1000)

    # -- the pipeline's side -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Generation is over: wait for the install. What was held back is the Write step's to write (it writes
        the whole validated file set)."""
        if self.ctx.cancel.is_set():
            self.cancel.set()
        if self.thread is not None:
            self.thread.join()
        self.pending.clear()

    def abort(self) -> None:
        """The build ends before the Write step (or is over): stop the install and wait for it. Idempotent."""
        self.cancel.set()
        if self.thread is not None:
            self.thread.join()
        self.pending.clear()

    def adopt(self, ctx: BuildContext) -> None:
        """After the Write step settled the final file set: keep the install when it ran on the same dependency
        inputs (its lockfile joins the set), re-raise its failure when it did, else leave it to be done again."""
        early = self.early
        if early is None:
            return
        pnpm = ctx.box.tc.pnpm_version
        ran_on = dict(early.files)
        final = dict(ctx.files)
        if "pnpm-lock.yaml" in ran_on:
            final["pnpm-lock.yaml"] = ran_on["pnpm-lock.yaml"]
        same = install.deps_fingerprint(final, pnpm, ctx.layout.manifests) == \
            install.deps_fingerprint(ran_on, pnpm, early.layout.manifests)
        if self.failure is not None:
            if same and isinstance(self.failure, BuildFailed) and self.failure.reason != "interrupted":
                ctx.times.add("install", self.install_ms)
                raise self.failure
            ctx.log.step(f"install: the one started while generating is not kept ({self.failure}); installing "
                         "again")
            return
        if not same:
            ctx.log.step("install: package.json (or the workspace layout) changed after the install started; "
                         "installing again")
            return
        ctx.files = final
        self.accepted = True


def _own_install_scripts(package_json: str) -> list[str]:
    """The project's own install-time scripts: they may read any source, so such an install waits for all."""
    try:
        data = json.loads(package_json)
    except (ValueError, RecursionError):
        return []
    found = data.get("scripts") if isinstance(data, dict) else None
    return [e for e in scripts.PROJECT_EVENTS if isinstance(found, dict) and e in found]
