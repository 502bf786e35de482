"""Request bodies: one msgspec Struct per body, carrying every rule, so a body is validated once, as it is decoded.

msgspec's Meta says what a schema can (types, id and ULID patterns, lengths; the id pattern holds the reserved
names of sync.names); ``__post_init__`` says the rest (a blank or NUL prompt, the frameworks, a workspace target)
and raises the API's own 400, which msgspec passes through untouched. The one rule that depends on the config,
the prompt's length cap, is ``check_prompt_cap``. The domain (build.submit) takes these structs as they are.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

import msgspec

from daemon.core.errors import BadRequest
from daemon.core.ids import ULID_RE
from daemon.project.monorepo import MAX_TARGET_CHARS, check_target_field
from sync.names import ID_PATTERN, ID_RE, ID_RULE, RESERVED_NAMES

FRAMEWORKS = ("react", "nextjs", "vue", "svelte")

_RESERVED = ", ".join(sorted(n for n in RESERVED_NAMES if ID_RE.fullmatch(n)))
IdStr = Annotated[str, msgspec.Meta(pattern=ID_PATTERN, description=f"an id: {ID_RULE} ({_RESERVED}, any case)")]
UlidStr = Annotated[str, msgspec.Meta(pattern=ULID_RE.pattern, description="a version id (ULID)")]
Framework = Annotated[str, msgspec.Meta(description=" | ".join(FRAMEWORKS))]
TargetPackage = Annotated[str, msgspec.Meta(max_length=MAX_TARGET_CHARS, description="a pnpm workspace's package to "
                                            "build and preview: its name or its path relative to the workspace root")]
DEFAULT_TTL_S = 900


def _field_error(message: str, field: str) -> BadRequest:
    return BadRequest(message, code="invalid_field", field=field)


def check_prompt(prompt: str) -> None:
    """The prompt rules that need no config: not blank, no NUL (400 naming `prompt`)."""
    if not prompt.strip():
        raise _field_error("prompt must not be empty", "prompt")
    if "\x00" in prompt:
        raise _field_error("prompt must not contain NUL characters", "prompt")


def check_prompt_cap(prompt: str, max_prompt: int) -> None:
    """The prompt's length cap, [limits] max_prompt_chars (400 naming `prompt`)."""
    if len(prompt) > max_prompt:
        raise _field_error(f"prompt is longer than {max_prompt} characters", "prompt")


def _check_framework(framework: str | None) -> None:
    if framework is not None and framework not in FRAMEWORKS:
        raise _field_error(f"framework must be one of {', '.join(FRAMEWORKS)}", "framework")


def _target(target: str | None) -> str | None:
    if target is None:
        return None
    try:
        return check_target_field(target)
    except ValueError as exc:
        raise _field_error(f"targetPackage {exc}", "targetPackage") from None


class _BuildBody(msgspec.Struct, rename="camel"):
    user_id: IdStr
    project_id: IdStr
    prompt: str


class NewProjectBody(_BuildBody):
    """POST /build-preview-for-new-project."""

    framework: Framework | None = None
    target_package: TargetPackage | None = None
    org_id: IdStr | None = None
    repair: Annotated[bool, msgspec.Meta(description="false: this build is never repaired ([repair] mode)")] = True
    base_version_id: ClassVar[None] = None  # a new project has no base

    def __post_init__(self) -> None:
        check_prompt(self.prompt)
        _check_framework(self.framework)
        self.target_package = _target(self.target_package)


class RebuildBody(_BuildBody):
    """POST /rebuild-preview; a rebuild keeps its base's framework."""

    base_version_id: UlidStr | None = None
    target_package: TargetPackage | None = None
    org_id: IdStr | None = None
    repair: Annotated[bool, msgspec.Meta(description="false: this build is never repaired ([repair] mode)")] = True
    framework: ClassVar[None] = None

    def __post_init__(self) -> None:
        check_prompt(self.prompt)
        self.target_package = _target(self.target_package)


# The domain's name for a build request (new or rebuild); tests and callers build one positionally.
BuildRequest = NewProjectBody


class GenerateBody(msgspec.Struct):
    """POST /generate."""

    prompt: str
    framework: Framework | None = None

    def __post_init__(self) -> None:
        check_prompt(self.prompt)
        _check_framework(self.framework)


class ProjectRef(msgspec.Struct):
    """POST /rollback/{versionId}: the project the version must belong to."""

    userId: IdStr
    projectId: IdStr
    orgId: IdStr | None = None


class TokenBody(msgspec.Struct):
    """POST /tokens."""

    userId: IdStr
    projectId: IdStr
    ttlSeconds: Annotated[int, msgspec.Meta(ge=1, description="lifetime; at most [server] read_token_max_ttl_s")] \
        = DEFAULT_TTL_S


class RepairBody(msgspec.Struct):
    """POST /versions/{versionId}/repair: the project the failed version must belong to."""

    userId: IdStr
    projectId: IdStr
    orgId: IdStr | None = None


class PlanBody(msgspec.Struct):
    """PUT /users/{userId}/plan and /orgs/{orgId}/plan."""

    plan: str


def _field_from(message: str) -> str | None:
    """The field a validation message names ("... at `$.userId`", "missing required field `prompt`", "Missing
    required query parameter 'userId'")."""
    m = re.search(r"at `\$\.([A-Za-z_]\w*)", message) or re.search(r"field `([A-Za-z_]\w*)`", message) \
        or re.search(r"query parameter '([A-Za-z_]\w*)'", message)
    return m.group(1) if m else None


def invalid(message: str, key: str | None = None) -> BadRequest:
    """The 400 for a msgspec validation message (the field it names, else `key`); the id pattern reads as its
    rule. The API's error handler and `parse` give the same answer for the same body."""
    message = message.replace(f"matching regex '{ID_PATTERN}'", ID_RULE)
    field = _field_from(message) or (key if key not in (None, "data") else None)
    if field:
        return BadRequest(f"{field}: {message}", code="invalid_field", field=field)
    return BadRequest(message, code="invalid_body")


def parse(data: Any, body: type[NewProjectBody] | type[RebuildBody], *, max_prompt: int) -> Any:
    """A body that arrives as builtins (a dashboard form): the struct's own decoding, then the prompt cap."""
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    try:
        req = msgspec.convert(data, body)
    except msgspec.ValidationError as exc:  # split as Litestar splits it: "<message> - at `$.<key>`"
        message, _, where = str(exc).partition(" - at `$.")
        raise invalid(message, where.rstrip("`") or None) from None
    check_prompt_cap(req.prompt, max_prompt)
    return req
