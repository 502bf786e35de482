"""The checks of one build as it runs them: started in their no-network view beside (or after) the bundle,
awaited and recorded on the version once; checks that outlive their build are recorded by a thread of their own.
What the checks are and how they are judged is daemon/steps/checks.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import sandbox
from daemon.core import quotas
from daemon.core.db import database
from daemon.core.events import ChecksRecorded
from daemon.project import frameworks, isolation
from daemon.project.buildlog import BuildLog
from daemon.steps import checks, sandboxed
from daemon.steps.context import BuildContext, VersionWriter
from sandbox import safepath

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.build")
CHECKS_NICE = 10


def start(ctx: BuildContext, plan: checks.Plan) -> checks.Session:
    """The checks in their no-network view (sources read-only, the output dirs absent: isolation.checks_view)
    with the build's limits, in a thread beside the build."""
    rt, box, version_id, nm_bytes = ctx.rt, ctx.box, ctx.v.version_id, ctx.nm_bytes
    work = box.dirs.work
    state = checks.state_dir(box.dirs.cache)
    safepath.remove_tree(state, ["home"])  # HOME starts empty; the incremental state beside it stays
    home, xdg = safepath.ensure_dir(state, ["home"]), safepath.ensure_dir(state, ["xdg"])
    isolation.give_to_code(state, box.ids, skip=())
    env = sandboxed.env(rt.cfg, box.tc, home, xdg)
    outs = [rel for rel in ctx.out_candidates if rel not in frameworks.SOURCE_DIRS]
    view = isolation.checks_view(rt.data_dir, rt.layout.store_dir, box.dirs, state, outs, readonly=box.readonly,
                                 tmp_bytes=box.tmp_bytes, packages=box.packages) if box.confined else None
    # Under `record` the preview waits only for the bundle: the checks take the CPU the bundle leaves idle.
    # Under `fail` both gate the preview, so neither yields.
    nice = CHECKS_NICE if rt.cfg.build.checks == "record" else 0

    def run_code(argv: list[str], on_line: Callable[[str], None]) -> sandbox.Result:
        res = sandbox.run(argv, cwd=work, env=env, limits=sandboxed.limits(rt.cfg), on_line=on_line,
                          network=False, output_root=None, layer=rt.sandbox_layer, user=box.user,
                          cancel=ctx.cancel, view=view, disk_roots=sandboxed.code_roots(box.dirs),
                          disk_base=nm_bytes, nice=nice)
        # Metered while the build's meter is open; checks recorded after going live are not (it is closed).
        # The checks' own thread: its connection closes with the write.
        with database.connection_context():
            quotas.add_cpu(version_id, res.cpu_seconds)
        return res

    return checks.Session(plan, run_code, state, work).start()


def done(rt: Runtime, pending: checks.Pending, writer: VersionWriter, blog: BuildLog, *,
         judge: bool = True) -> None:
    """Wait for the build's checks, record them on the version, log them; under `fail` BuildFailed when one
    did not pass. Runs once per build (later calls do nothing)."""
    session = pending.take(writer.version_id)
    if session is None:
        return
    record = session.wait()
    for line in checks.summary_lines(record):
        blog.step(line)
    v = writer.record(checks=record, add_timings={"checks": session.elapsed_ms})
    rt.events.publish(ChecksRecorded(v))
    if judge:
        checks.judge(rt.cfg.build.checks, record)


def record_late(rt: Runtime, pending: checks.Pending, version_id: str, log_path: Path) -> None:
    """Checks that outlived their build (`record`): recorded when they end, their lines appended to the log."""
    late = BuildLog(log_path, redact=rt.cfg.secrets.values(), cap_bytes=rt.cfg.limits.log_mb * 2**20)
    try:
        with database.connection_context():  # a thread of its own: its connection closes with it
            done(rt, pending, VersionWriter(rt.outbox, version_id), late, judge=False)
    except Exception:
        log.exception("recording the checks of %s failed", version_id)
    finally:
        late.close()
