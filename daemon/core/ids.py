"""Identifiers: ULID version ids and the validation of user and project ids used as path components."""

from __future__ import annotations

import re

from ulid import ULID

from daemon.core.errors import BadRequest

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_version_id() -> str:
    """A fresh ULID: sortable by creation time, no counter to race on."""
    return str(ULID())


def valid_id(value: object) -> bool:
    """True for a userId/projectId safe as a path component and a KV key part."""
    return isinstance(value, str) and bool(ID_RE.fullmatch(value))


def valid_version_id(value: object) -> bool:
    """True for a well-formed ULID string."""
    return isinstance(value, str) and bool(ULID_RE.fullmatch(value))


def check_project_ids(user_id: object, project_id: object) -> None:
    """400 naming the field unless both ids are valid path components."""
    for name, value in (("userId", user_id), ("projectId", project_id)):
        if not valid_id(value):
            raise BadRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -", code="invalid_field", field=name)


def check_org_id(org_id: object) -> str:
    """An orgId is an id like userId (400 naming orgId otherwise)."""
    if not valid_id(org_id):
        raise BadRequest("orgId must be 1-64 characters of A-Z a-z 0-9 _ -", code="invalid_field", field="orgId")
    return str(org_id)
