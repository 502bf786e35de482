"""The warm bundler: after a good build, the project's Vite stays alive in the project's own code view (same user,
same limits, no network, its own layer's accounting) holding Rollup's cache of node_modules, so a one-file rebuild
pays for the changed module graph only, not for Node, Vite and the plugins starting from nothing.

The process runs generated code (vite.config.ts, its plugins) and is trusted with nothing: it is stopped (SIGSTOP
on its whole tree) whenever it is not building, so nothing generated runs while the daemon writes the workspace or
exports the output; its answers only say "look now", and the output leaves through the same door as a cold
build's (daemon/steps/export.py). Anything unusual means the cold build, and the log says why.

Long because the pool (LRU, idle, drain, shutdown), one bundler's life (start, prime, stop/resume, answers) and the
decision warm-or-cold with its reasons share one lock and one process's lifetime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

import sandbox
from daemon.core import quotas
from daemon.project import isolation
from daemon.steps import sandboxed

if TYPE_CHECKING:
    from daemon.core.config import Config
    from daemon.steps.context import BuildContext

log = logging.getLogger("previewd.warm")

MARK = "@@previewd-warm "
LIFE_S = 3600.0  # a bundler's whole life (its wall limit): then it ends and the next build starts a fresh one
READY_S = 60.0  # Node and Vite loading, under load
PRIME_WAIT_S = 30.0  # how long the next build waits for a bundler still filling its cache before stopping it
CONFIG_NAMES = tuple(f"vite.config.{ext}" for ext in ("js", "mjs", "cjs", "ts", "mts", "cts"))
# What the bundler read once and never again: any change means a fresh process (package manager files included,
# since they decide node_modules).
INPUT_NAMES = ("package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", ".npmrc", *CONFIG_NAMES)
# Frameworks whose own build wraps Vite: their CLI is not `vite build`, so they stay cold.
WRAPPERS = ("next", "astro", "nuxt", "@sveltejs/kit", "@remix-run/dev", "@angular/core")


def _driver() -> str:
    return Path(__file__).with_name("warm_driver.mjs").read_text(encoding="utf-8")


def not_warmable(files: Mapping[str, str], is_workspace: bool) -> str | None:
    """Why this file set always builds cold (None: a warm bundler may build it): read from the record, never from
    the workspace generated code can write."""
    if is_workspace:
        return "a pnpm workspace builds through `pnpm --filter`"
    try:
        pkg = json.loads(files.get("package.json", ""))
    except ValueError:
        return "package.json is not JSON"
    if not isinstance(pkg, dict):
        return "package.json is not an object"
    deps: dict[str, object] = {}
    for k in ("dependencies", "devDependencies"):
        if isinstance(pkg.get(k), dict):
            deps.update(pkg[k])
    if "vite" not in deps:
        return "the project does not use Vite (no watch mode the daemon drives)"
    if wrapper := next((w for w in WRAPPERS if w in deps), None):
        return f"framework {wrapper} builds through its own CLI"
    script = (pkg.get("scripts") or {}).get("build") if isinstance(pkg.get("scripts"), dict) else None
    if not isinstance(script, str) or not _vite_build(script):
        return f"the build script is {json.dumps(script)}, not `vite build` (or `tsc -b && vite build`)"
    return None


def _vite_build(script: str) -> bool:
    """`vite build`, alone or after the type check the checks split off (checks.plan)."""
    parts = [p.strip() for p in script.split("&&")]
    return parts[-1] == "vite build" and all(p in ("tsc -b", "tsc --build", "tsc -b --noEmit") for p in parts[:-1])


def fingerprint(files: Mapping[str, str], config_deps: tuple[str, ...], node_version: str) -> str:
    """What a bundler read once: package manager files, the bundler config and what it imports, the Node version."""
    h = hashlib.sha256(node_version.encode())
    for name in sorted({*INPUT_NAMES, *config_deps}):
        h.update(b"\0" + name.encode() + b"\0" + files.get(name, "\0absent").encode())
    return h.hexdigest()


@dataclass
class Bundler:
    """One project's warm Vite: its sandboxed run (a thread), its stdin, and what it said."""

    key: tuple[str, str]
    work: Path
    fingerprint: str
    config_deps: tuple[str, ...] = ()
    stdin_w: int = -1
    pid: int | None = None
    result: sandbox.Result | None = None  # set when the run ended
    ready: bool = False
    priming: str | None = None  # the prime's id while it runs
    answers: dict[str, tuple[bool, int, tuple[str, ...]]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # ids asked and not answered: any other answer is ignored
    sink: Callable[[str], None] | None = None  # the build log of the build it serves now
    last_used: float = field(default_factory=time.monotonic)
    stopped: bool = False  # SIGSTOPped
    cancel: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)
    thread: threading.Thread | None = None
    seq: int = 0

    @property
    def alive(self) -> bool:
        return self.result is None and not self.cancel.is_set()

    def on_line(self, line: str) -> None:
        """A line of the process: an answer, or a build log line (dropped when no build listens)."""
        if line.startswith(MARK):
            self._answer(line[len(MARK):].split(" ", 4))
            return
        sink = self.sink
        if sink is not None:
            sink(line)

    def _answer(self, words: list[str]) -> None:
        with self.cond:
            if words[0] == "ready":
                self.ready = True
            elif words[0] == "done" and len(words) >= 4 and words[1] in self.sent:
                deps: tuple[str, ...] = ()
                if len(words) == 5:
                    with contextlib.suppress(ValueError, TypeError):
                        deps = tuple(self._rel(d) for d in json.loads(words[4]) if isinstance(d, str))
                with contextlib.suppress(ValueError):
                    self.answers[words[1]] = (words[2] == "ok", int(words[3]), tuple(d for d in deps if d))
                    self.sent.discard(words[1])
            self.cond.notify_all()

    def _rel(self, path: str) -> str:
        """A config dependency as a workspace path ('' outside it: node_modules, which an install changes)."""
        try:
            rel = Path(path).relative_to(self.work).as_posix()
        except ValueError:
            return ""
        return "" if rel.startswith("node_modules/") else rel

    def ended(self, res: sandbox.Result | None) -> None:
        with self.cond:
            self.result = res or sandbox.Result(None, "exit_nonzero", 0.0, 0, 0, 0.0, False, "did not start", "")
            self.cond.notify_all()

    def send(self, cmd: str) -> str:
        """Send a command; returns its id."""
        self.seq += 1
        ident = f"{cmd[0]}{self.seq}"
        with self.cond:
            self.sent.add(ident)
        os.write(self.stdin_w, f"{cmd} {ident}\n".encode())
        return ident

    def wait(self, pred: Callable[[], bool], timeout: float, cancel: threading.Event | None = None) -> bool:
        """Wait until pred() (True), the process ended, the timeout or `cancel` (False)."""
        end = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = end - time.monotonic()
                if self.result is not None or left <= 0 or (cancel is not None and cancel.is_set()):
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def signal_tree(self, sig: int) -> None:
        """SIGSTOP or SIGCONT every process of the tree, again until no new one appears (a fork racing the
        first pass is caught by the next)."""
        if self.pid is None:
            return
        done: set[int] = set()
        for _ in range(8):
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            new = [p for p in procs if p.pid not in done]
            if not new:
                break
            for p in new:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(sig)
                done.add(p.pid)
        self.stopped = sig == signal.SIGSTOP

    def rss(self) -> int:
        """Resident memory of the whole tree (bytes)."""
        if self.pid is None:
            return 0
        try:
            root = psutil.Process(self.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def stop(self) -> None:
        """End the run (its layer kills the whole tree) and wait for it."""
        self.cancel.set()
        if self.stopped:
            self.signal_tree(signal.SIGCONT)
        if self.pid is not None:  # a stopped tree ends at once instead of at the next sample
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        if self.thread is not None:
            self.thread.join(15)
        with contextlib.suppress(OSError):
            os.close(self.stdin_w)
        self.stdin_w = -1


def _limits(cfg: Config) -> sandbox.Limits:
    lim = sandboxed.limits(cfg)
    return sandbox.Limits(cpu_seconds=lim.cpu_seconds, memory_bytes=lim.memory_bytes, output_bytes=lim.output_bytes,
                          wall_seconds=max(LIFE_S, lim.wall_seconds), pids=lim.pids, log_bytes=lim.log_bytes,
                          disk_bytes=lim.disk_bytes)


class Pool:
    """The warm bundlers of this daemon: at most `[build] warm_projects` (least recently used goes), each stopped
    after `[build] warm_idle_s` unused, all on drain and shutdown."""

    def __init__(self, cfg: Config, layer: str, draining: Callable[[], bool] = lambda: False) -> None:
        self.cfg = cfg
        self.draining = draining  # a fleet droplet that drains keeps no bundler (its projects go elsewhere)
        self.layer = layer
        self.size = cfg.build.warm_projects
        self.idle_s = cfg.build.warm_idle_s
        self._lock = threading.RLock()
        self._bundlers: OrderedDict[tuple[str, str], Bundler] = OrderedDict()
        self._reaper: threading.Thread | None = None
        self._quit = threading.Event()

    # -- the pool ----------------------------------------------------------------------------------------
    def keys(self) -> list[tuple[str, str]]:
        """The projects with a live bundler, least recently used first."""
        with self._lock:
            return [k for k, b in self._bundlers.items() if b.alive]

    def get(self, key: tuple[str, str]) -> Bundler | None:
        with self._lock:
            return self._bundlers.get(key)

    def stop(self, key: tuple[str, str], why: str) -> None:
        """Stop a project's bundler (missing is fine)."""
        with self._lock:
            b = self._bundlers.pop(key, None)
        if b is not None:
            log.info("warm bundler of %s/%s stopped: %s", *key, why)
            b.stop()

    def stop_all(self, why: str) -> int:
        """Stop every bundler (drain, shutdown); returns how many."""
        keys = list(self._bundlers)
        for k in keys:
            self.stop(k, why)
        return len(keys)

    def reap(self, now: float | None = None) -> None:
        """Stop the bundlers idle past `warm_idle_s` (all of them while the droplet drains) and forget the ended
        ones."""
        if self._bundlers and self.draining():
            self.stop_all("the droplet drains")
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            items = list(self._bundlers.items())
        for k, b in items:
            if not b.alive:
                self.stop(k, f"its run ended ({b.result.detail if b.result else 'stopped'})")
            elif now - b.last_used > self.idle_s:
                self.stop(k, f"idle for more than {self.idle_s:g} s")

    def start(self) -> None:
        """The reaper: idle bundlers stop within a few seconds of their `warm_idle_s`."""
        if self._reaper is None and self.size > 0:
            self._reaper = threading.Thread(target=self._reap_loop, name="previewd-warm", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._quit.wait(min(5.0, max(0.5, self.idle_s / 4))):
            try:
                self.reap()
            except Exception:  # the loop must go on; a bundler it could not stop is tried again
                log.exception("warm reaper failed")

    def close(self, _grace: float = 0.0) -> None:
        """Shutdown: the reaper ends, every bundler stops."""
        self._quit.set()
        if self._reaper is not None:
            self._reaper.join(10)
        self.stop_all("the daemon stops")

    def alive(self) -> bool:
        return self._reaper is not None and self._reaper.is_alive()

    # -- a build's view of it ----------------------------------------------------------------------------
    def hold(self, key: tuple[str, str], say: Callable[[str], None]) -> None:
        """Before a build of the project writes its workspace: its bundler must not run (a prime still running
        gets PRIME_WAIT_S to end, else the bundler goes)."""
        b = self.get(key)
        if b is None or not b.alive:
            return
        if b.priming is not None and not b.wait(lambda: b.priming in b.answers, PRIME_WAIT_S):
            self.stop(key, "still filling its cache when the next build came")
            say("warm bundler: stopped, it was still filling its cache")
            return
        b.priming = None
        if not b.stopped:
            b.signal_tree(signal.SIGSTOP)

    def why_cold(self, ctx: BuildContext) -> str | None:
        """Why this build bundles cold (None: the project's bundler builds it)."""
        if self.size <= 0:
            return "warm bundlers are off ([build] warm_projects = 0)"
        key = (ctx.v.user_id, ctx.v.project_id)
        if (why := not_warmable(ctx.files, ctx.layout.is_workspace)) is not None:
            return why
        b = self.get(key)
        if b is None:
            return "no warm bundler for this project (its first build here, or it was stopped: idle or evicted)"
        why = f"the warm bundler ended: {b.result.detail if b.result else 'stopped'}" if not b.alive else \
            "the dependencies were installed again" if ctx.reusable is None else \
            "package.json, the lockfile, the bundler config (or what it imports) or the toolchain changed" \
            if b.fingerprint != fingerprint(ctx.files, b.config_deps, ctx.box.tc.node_version) else None
        if why is not None:  # stale for good: its memory goes now, not when it is idle
            self.stop(key, why)
        return why

    def rebuild(self, ctx: BuildContext) -> sandbox.Result | str:
        """Build with the project's warm bundler: its Result when the output is written, else why not (the
        bundler is stopped then, and the caller builds cold)."""
        key = (ctx.v.user_id, ctx.v.project_id)
        b = self.get(key)
        if b is None:
            return "no warm bundler"
        ctx.log.step("$ vite build (warm bundler: Node, Vite and node_modules' transforms kept from the last build)")
        t0 = time.monotonic()
        cpu0 = _cpu(b)
        b.sink, b.last_used = ctx.log.line, time.monotonic()
        b.signal_tree(signal.SIGCONT)
        try:
            ident = b.send("build")
            ok = b.wait(lambda: ident in b.answers, self.cfg.limits.wall_seconds, ctx.cancel)
        except OSError as exc:
            ok, ident = False, f"({exc.strerror})"
        finally:
            if b.alive:
                b.signal_tree(signal.SIGSTOP)
            b.sink = None
        wall = time.monotonic() - t0
        answer = b.answers.pop(ident, None)
        if not ok or answer is None or not answer[0]:
            why = ("it ended: " + b.result.detail) if b.result is not None else \
                "its build failed" if answer is not None else "no answer"
            self.stop(key, why)
            return f"the warm build did not finish ({why})"
        b.config_deps = answer[2]
        b.fingerprint = fingerprint(ctx.files, b.config_deps, ctx.box.tc.node_version)
        with self._lock:
            self._bundlers.move_to_end(key)
        cpu = max(0.0, _cpu(b) - cpu0)  # the tree's, read by the daemon: the build's usage, as a cold one's
        quotas.add_cpu(ctx.v.version_id, cpu)
        ctx.log.step(f"build: ok (warm bundler, {wall:.1f}s wall, {cpu:.1f}s cpu, rss {b.rss() / 2**20:.0f} MiB)")
        return sandbox.Result(exit_code=0, reason="ok", cpu_seconds=round(cpu, 3), peak_memory_bytes=b.rss(),
                              output_bytes=0, wall_seconds=round(wall, 3), log_truncated=False,
                              detail="ok: warm bundler", layer=self.layer)

    def keep(self, ctx: BuildContext) -> None:
        """After a good cold build of a warmable project: start its bundler (the least recently used one goes
        past `warm_projects`), which fills its cache in the background, without writing the output."""
        key = (ctx.v.user_id, ctx.v.project_id)
        self.stop(key, "a cold build replaced it")
        if self.draining():
            return
        with self._lock:
            while len(self._bundlers) >= self.size:
                old = next(iter(self._bundlers))
                self.stop(old, f"least recently used of {self.size} ([build] warm_projects)")
        box = ctx.box
        b = Bundler(key, box.dirs.work, fingerprint(ctx.files, (), box.tc.node_version))
        r, b.stdin_w = os.pipe()
        os.set_inheritable(r, True)
        view = isolation.code_view(ctx.rt.data_dir, ctx.rt.layout.store_dir, box.dirs, readonly=box.readonly,
                                   tmp_bytes=box.tmp_bytes, packages=box.packages) if box.confined else None
        env = dict(box.env)
        env["PATH"] = f"{box.dirs.work / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
        env["npm_lifecycle_event"], env["npm_command"] = "build", "run-script"
        argv = [box.tc.node, "--input-type=module", "-e", _driver()]
        started = threading.Event()

        def spawned(pid: int) -> None:
            b.pid = pid
            started.set()

        def run() -> None:
            res = None
            try:
                res = sandbox.run(argv, cwd=box.dirs.work, env=env, limits=_limits(self.cfg), on_line=b.on_line,
                                  network=False, layer=self.layer, user=box.user, cancel=b.cancel, view=view,
                                  disk_roots=sandboxed.code_roots(box.dirs), disk_base=ctx.nm_bytes,
                                  output_root=box.dirs.work, stdin=r, on_spawn=spawned)
            except Exception:
                log.exception("warm bundler of %s/%s could not run", *key)
            finally:
                os.close(r)
                started.set()
                b.ended(res)

        b.thread = threading.Thread(target=run, name=f"previewd-warm-{key[1]}", daemon=True)
        with self._lock:
            self._bundlers[key] = b
        b.thread.start()
        started.wait(READY_S)
        try:
            b.priming = b.send("prime")
        except OSError:
            self.stop(key, "it did not start")
            return
        ctx.log.step("warm bundler: started for the next build of this project (filling its cache in the "
                     "background, output untouched)")


def _cpu(b: Bundler) -> float:
    if b.pid is None:
        return 0.0
    try:
        root = psutil.Process(b.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0.0


class Hold:
    """Before the workspace is written: the project's warm bundler is stopped (SIGSTOP), so no generated code
    runs while the daemon writes it."""

    name = "warm-hold"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        return ctx.warm is not None

    def run(self, ctx: BuildContext) -> None:
        assert ctx.warm is not None
        ctx.warm.hold((ctx.v.user_id, ctx.v.project_id), ctx.log.step)


class Keep:
    """After the output is staged: a project built cold gets a warm bundler for its next build."""

    name = "warm-keep"
    timing = None

    def applies(self, ctx: BuildContext) -> bool:
        pool = ctx.warm
        return pool is not None and pool.size > 0 and ctx.bundled_warm is False \
            and not_warmable(ctx.files, ctx.layout.is_workspace) is None

    def run(self, ctx: BuildContext) -> None:
        assert ctx.warm is not None
        ctx.warm.keep(ctx)
