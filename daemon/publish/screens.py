"""Render checks after deploy, screenshots per version, and visual diffs between two versions' screenshots."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import sandbox
from daemon.core import versions
from daemon.core.db import ProjectVersion
from daemon.core.errors import BadRequest, NotFound
from daemon.core.layout import Layout
from daemon.project import renderbox
from daemon.publish import artifacts
from daemon.render import RenderReport, check_page
from sandbox import safepath

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger("previewd.render")

SIZES = ("desktop", "mobile")


def screen_key(v: ProjectVersion, size: str) -> str:
    """Object-store key of a version's screenshot, beside its artifact."""
    return Layout.screen_key(v.user_id, v.project_id, v.version_id, size)


def check_version(rt: Runtime, version_id: str) -> RenderReport | None:
    """Open a deployed version's preview in Chromium; record render_status and store its screenshots.

    Never fails the version: a broken page is a render_status, not a build failure.
    """
    v = ProjectVersion.get_or_none(ProjectVersion.version_id == version_id)
    if v is None or v.status != "deployed" or not v.preview_url or not rt.cfg.render.enabled:
        return None
    try:
        report = _confined_check(rt, v.preview_url)
    except Exception as exc:  # a check that cannot run is "unavailable", and the daemon carries on
        log.warning("render check of %s could not run: %s", version_id, exc)
        report = RenderReport(status="unavailable", detail=f"{type(exc).__name__}: {exc}")
    for size, png in report.screenshots.items():
        artifacts.store_object(rt, screen_key(v, size), png, "image/png")
    versions.update(rt.outbox, version_id, render_status=report.status, render_detail=json.dumps(report.as_dict()))
    rt.sync_nudge()
    log.info("render check %s: %s %s", version_id, report.status, report.detail)
    return report


def _confined_check(rt: Runtime, url: str) -> RenderReport:
    """The browser under the builds' memory and task limits (cgroup layers), a scrubbed env and its own time cap,
    in its render box (daemon/project/renderbox.py): no network, its own user, only the preview to load.

    Chromium's whole tree joins the cgroups before it execs and is killed with them afterwards.
    """
    lim = rt.cfg.limits
    limits = sandbox.Limits(cpu_seconds=lim.cpu_seconds, memory_bytes=lim.memory_mb * 2**20,
                            wall_seconds=rt.cfg.render.timeout_s + 10, pids=max(lim.pids, 512))
    scratch = safepath.ensure_dir(rt.data_dir, ["tmp", "render"])
    box = renderbox.browser_box(rt.cfg, rt.data_dir, rt.layout.store_dir, scratch, tmp_bytes=lim.memory_mb * 2**20)
    source = renderbox.origin_source(url, rt.layout.previews, rt.cfg.server.preview_domain, rt.cfg.render.timeout_s)
    log.debug("render check of %s: %s", url, box.note)
    with sandbox.confined(limits, rt.sandbox_layer) as cgroup_procs:
        return check_page(url, chromium=rt.cfg.render.chromium, timeout_s=rt.cfg.render.timeout_s,
                          workdir=scratch, join_cgroups=cgroup_procs, env=box.env, wrap=box.wrap, source=source,
                          chromium_sandbox=box.sandbox, private_tmp=box.private_tmp)


def screenshot(rt: Runtime, version_id: str, size: str) -> bytes:
    """A version's stored screenshot (404 when it has none)."""
    if size not in SIZES:
        raise BadRequest(f"size must be one of {', '.join(SIZES)}", code="invalid_field", field="size")
    v = versions.get(version_id)
    key = screen_key(v, size)
    path = rt.layout.local_object(key)
    if path.is_file():
        return path.read_bytes()
    if rt.remote_objects is not None:
        try:
            return rt.remote_objects.open_bytes(key)
        except Exception:
            log.debug("screenshot %s not in the remote store either", key, exc_info=True)
    raise NotFound(f"version {version_id} has no {size} screenshot (render status: {v.render_status or 'pending'})",
                   code="no_screenshot", versionId=version_id)


def visual_diff(rt: Runtime, a_id: str, b_id: str, *, stats_only: bool, size: str = "desktop") -> Any:
    """PNG of the two screenshots with changed pixels highlighted, or `{changedPixels, changedRatio, size}`."""
    a, b = versions.get(a_id), versions.get(b_id)
    if (a.user_id, a.project_id) != (b.user_id, b.project_id):
        raise BadRequest("the two versions belong to different projects", code="different_projects")
    # numpy (through visual) is imported here, not at start-up: it is a tenth of the daemon's import time, and
    # only this route needs it.
    from daemon.render.visual import VisualError, compare

    try:
        diff = compare(screenshot(rt, a_id, size), screenshot(rt, b_id, size))
    except VisualError as exc:
        raise BadRequest(str(exc), code=exc.code) from exc
    if stats_only:
        return diff.as_dict()
    return diff.render_png()
