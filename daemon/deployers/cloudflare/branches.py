"""Pages live branches: each project's branch name, its alias URL, and the guard that keeps one project off
another's live alias.

A branch alias is at most 28 characters, so no encoding of two 64-character ids into one can be injective:
`live_branch` spells a digest (32 bits), and a collision is refused here. A project that already has a Pages
deployment keeps its branch; a project that has none yet, whose branch another known project has, is refused:
its deploys fail naming the reason, rather than take over another user's stable address.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable

from daemon.core.db import ProjectVersion
from daemon.deployers.base import DeployError, DeployRequest

log = logging.getLogger("previewd.livealias")

ProjectsSource = Callable[[], Iterable[tuple[str, str]]]
BRANCH_MAX = 28  # Pages truncates branch aliases to 28 characters; keep the whole name meaningful


def live_branch(user_id: str, project_id: str) -> str:
    """The project's live branch, `<project>-<user slug, cut>-<8 hex of sha256(user, project)>`: at most 28
    characters (so the alias host is the branch itself), DNS-safe, distinct per user and project even when the
    slugs are cut or fold case and punctuation together."""
    digest = hashlib.sha256(f"{user_id}\0{project_id}".encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", f"{project_id}-{user_id}".lower()).strip("-")
    head = slug[: BRANCH_MAX - len(digest) - 1].strip("-")
    return f"{head}-{digest}" if head else f"p-{digest}"


def branch_alias_url(branch: str, pages_project: str) -> str:
    """The Pages branch alias, `https://<branch>.<pages project>.pages.dev/` (it serves the branch's newest
    deployment)."""
    label = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")[:BRANCH_MAX].strip("-")
    return f"https://{label}.{pages_project}.pages.dev/"


def _known_projects(more: ProjectsSource | None) -> set[tuple[str, str]]:
    """This droplet's projects (any version), plus `more` (a fleet's lease rows) when it can be read."""
    known = {(v.user_id, v.project_id) for v in
             ProjectVersion.select(ProjectVersion.user_id, ProjectVersion.project_id).distinct()}
    if more is not None:
        try:
            known |= set(more())
        except Exception:
            log.warning("fleet projects unreadable; the live branch check covers this droplet's only", exc_info=True)
    return known


def branch_conflict(user_id: str, project_id: str, more: ProjectsSource | None = None) -> tuple[str, str] | None:
    """The other (user, project) whose live branch this project's would be, when this one may not take it."""
    has_deployed = (ProjectVersion.select().where(
        (ProjectVersion.user_id == user_id) & (ProjectVersion.project_id == project_id)
        & ProjectVersion.cf_deployment_id.is_null(False)).exists())
    if has_deployed:
        return None
    mine = live_branch(user_id, project_id)
    for ids in sorted(_known_projects(more)):
        if ids != (user_id, project_id) and live_branch(*ids) == mine:
            return ids
    return None


def checked_branch(req: DeployRequest, more: ProjectsSource | None = None) -> str:
    """The Cloudflare deployer's branch for a deploy: the project's live branch, unless another project has it."""
    branch = live_branch(req.user_id, req.project_id)
    other = branch_conflict(req.user_id, req.project_id, more)
    if other is not None:
        log.error("live branch %s of %s/%s is already %s/%s's; deploy refused", branch, req.user_id, req.project_id,
                  *other)
        raise DeployError(f"the project's Pages live branch {branch!r} is another project's (a digest "
                          "collision); rename the project to deploy it")
    return branch
