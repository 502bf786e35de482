"""Identifiers: ULID version ids and the validation of user and project ids used as path components."""

from __future__ import annotations

import re

from ulid import ULID

from daemon.core.errors import BadRequest
from sync.names import ID_RE, ID_RULE, is_reserved
from sync.names import valid_id as _valid_id

__all__ = ["ID_RE", "ID_RULE", "ULID_RE", "check_org_id", "check_project_ids", "new_version_id", "valid_id",
           "valid_version_id"]
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_version_id() -> str:
    """A fresh ULID: sortable by creation time, no counter to race on."""
    return str(ULID())


def valid_id(value: object) -> bool:
    """True for a userId/projectId safe as a path component and a KV key part (sync.names: the one rule and
    the one table of reserved names, shared with every store)."""
    return _valid_id(value)


def _why(name: str, value: object) -> str:
    if isinstance(value, str) and ID_RE.fullmatch(value) and is_reserved(value):
        return f"{name} {value!r} is a reserved name (the daemon uses it itself); choose another"
    return f"{name} must be {ID_RULE}"


def valid_version_id(value: object) -> bool:
    """True for a well-formed ULID string."""
    return isinstance(value, str) and bool(ULID_RE.fullmatch(value))


def check_project_ids(user_id: object, project_id: object) -> None:
    """400 naming the field unless both ids are valid path components."""
    for name, value in (("userId", user_id), ("projectId", project_id)):
        if not valid_id(value):
            raise BadRequest(_why(name, value), code="invalid_field", field=name)


def check_org_id(org_id: object) -> str:
    """An orgId is an id like userId (400 naming orgId otherwise)."""
    if not valid_id(org_id):
        raise BadRequest(_why("orgId", org_id), code="invalid_field", field="orgId")
    return str(org_id)
