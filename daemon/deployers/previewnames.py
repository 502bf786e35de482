"""How the daemon names the previews it serves itself (the `local` deployer): deployment ids, live alias labels
and their URLs. Pure functions, so the fleet, cleanup and the preview server use them without the deployer."""

from __future__ import annotations

import hashlib
import re

from daemon.deployers.base import DeployError

# A DNS label: what may stand left of `.<preview_domain>` in a Host header.
DEPLOYMENT_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NOT_LABEL_CHARS = re.compile(r"[^a-z0-9]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _slug(value: str) -> str:
    return _NOT_LABEL_CHARS.sub("-", value.lower()).strip("-")


def deployment_id_for(project_id: str, version_id: str) -> str:
    """The DNS-label id of one version's deployment: `<project slug>-<version id>`, lowercase, <= 63 chars."""
    version = _slug(version_id)
    if not version or len(version) > 40:
        raise DeployError(f"version id {version_id!r} cannot form a deployment id (1-40 label characters)")
    project = _slug(project_id)[: 62 - len(version)].strip("-")
    label = f"{project}-{version}" if project else version
    if not DEPLOYMENT_ID_RE.match(label):
        raise DeployError(f"deployment id {label!r} is not a DNS label")
    return label


ALIAS_SEP = "--"  # never in a deployment id (slugs collapse runs of '-'), so it marks a live alias host
_PLAIN_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # lowercase, single inner hyphens: a label part as it is
_ESCAPES = {"-": "-0", "_": "-1"}
_HASHED_BITS_CHARS = 16  # base36 digits of sha256 in a hashed alias: about 82 bits


def _escape_id(value: str) -> str:
    """`x` + the id with `-` as `-0`, `_` as `-1` and an upper-case letter as `-<lower>`: a prefix code (so
    decodable, so injective) whose output never starts or ends with `-` and never holds `--`."""
    out = ["x"]
    for ch in value:
        out.append(_ESCAPES.get(ch) or (f"-{ch.lower()}" if "A" <= ch <= "Z" else ch))
    return "".join(out)


def _unescape_id(part: str) -> str | None:
    if not part.startswith("x"):
        return None
    out, i = [], 1
    while i < len(part):
        ch = part[i]
        if ch != "-":
            out.append(ch)
            i += 1
            continue
        code = part[i + 1: i + 2]
        out.append({"0": "-", "1": "_"}.get(code) or (code.upper() if code.isalpha() else ""))
        if not out[-1]:
            return None
        i += 2
    return "".join(out)


def _base36(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[r])
    return "".join(reversed(digits))


def alias_label(user_id: str, project_id: str) -> str:
    """A project's live alias label (a DNS label of at most 63 characters), one per (user, project):

    - `<project>--<user>` when both ids are lower-case letters, digits and single inner hyphens (as before);
    - else `<escaped project>--<escaped user>--x` (`_escape_id`: `Alice` is `x-alice`, `alice_` is `xalice-1`);
    - and when that is over 63 characters, `<project slug>--<user slug>--h<16 base36 of sha256(user, project)>`.

    The first two forms decode back to their ids (`alias_ids`), so no two projects share one; the hashed form
    is resolved only when exactly one known project has it (`PreviewResolver` refuses a collision)."""
    if _PLAIN_ID.match(project_id) and _PLAIN_ID.match(user_id) and len(project_id) + len(user_id) + 2 <= 63:
        return f"{project_id}{ALIAS_SEP}{user_id}"
    escaped = f"{_escape_id(project_id)}{ALIAS_SEP}{_escape_id(user_id)}{ALIAS_SEP}x"
    if len(escaped) <= 63:
        return escaped
    digest = int.from_bytes(hashlib.sha256(f"{user_id}\0{project_id}".encode()).digest()[:11], "big")
    project, user = (_slug(project_id)[:21].strip("-") or "p"), (_slug(user_id)[:21].strip("-") or "u")
    return f"{project}{ALIAS_SEP}{user}{ALIAS_SEP}h{_base36(digest, _HASHED_BITS_CHARS)}"


def alias_ids(label: str) -> tuple[str, str] | None:
    """(user, project) a plain or escaped alias label stands for; None for a hashed one or a non-alias."""
    parts = label.split(ALIAS_SEP)
    if len(parts) == 2 and all(_PLAIN_ID.match(x) for x in parts):
        return parts[1], parts[0]
    if len(parts) == 3 and parts[2] == "x":
        project, user = _unescape_id(parts[0]), _unescape_id(parts[1])
        if project and user and alias_label(user, project) == label:
            return user, project
    return None


def preview_url(deployment_id: str, preview_domain: str, port: int, scheme: str = "http") -> str:
    """The host-based URL a deployment is served at; the port is left out when it is the scheme's default."""
    port_part = "" if _DEFAULT_PORTS.get(scheme) == port else f":{port}"
    return f"{scheme}://{deployment_id}.{preview_domain}{port_part}/"
