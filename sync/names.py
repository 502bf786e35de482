"""Names no user can take: the one table of names the daemon and its stores use inside a per-user namespace,
and the id rule built on it (the daemon's id validator and every store check against this module).

A user id is the first segment of every object key and a folder under ``projects/`` and ``objects/``; a project
id is the folder inside it. So neither may be a name the daemon itself uses there: the local object store's
``_archive``/``_tmp`` folders, the data dir's own folders, anything starting with ``_`` or ``.`` (names the daemon
keeps for itself), or ``-`` (read as an option by the tools a path reaches). Compared case-insensitively: a
laptop's filesystem may fold case.
"""

from __future__ import annotations

import re

# The local object store's own folders at its root (sync/objects/local.py).
STORE_ARCHIVE_DIR = "_archive"
STORE_TMP_DIR = "_tmp"
STORE_DIRS = frozenset({STORE_ARCHIVE_DIR, STORE_TMP_DIR})

# The data dir's own folders and files (daemon/core/layout.py, the audit cache, the state files beside them): a
# user folder never shares a name with one, wherever a tool or an operator joins the two.
DATA_DIR_NAMES = frozenset({"projects", "objects", "previews", "logs", "tmp", "cache", "pnpm-store", "audit-cache",
                            "state.db", "queue.db", "kv.db", "previewd.lock", "hmac_secret"})

RESERVED_NAMES: frozenset[str] = frozenset(n.casefold() for n in STORE_DIRS | DATA_DIR_NAMES)
RESERVED_PREFIXES = ("_", ".", "-")

ID_MAX = 64
# Starts with a letter or digit: a leading `_`, `.` or `-` is reserved (see RESERVED_PREFIXES).
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ID_RULE = "1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit, not a reserved name"


def _anycase(name: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name)  # only [0-9_-] here


# The same rule as one regular expression (Python's and ECMAScript's dialects alike), for the API's schema.
ID_PATTERN = (r"^(?!(?:" + "|".join(_anycase(n) for n in sorted(RESERVED_NAMES) if ID_RE.fullmatch(n)) + r")$)"
              + ID_RE.pattern.lstrip("^"))


def is_reserved(name: str) -> bool:
    """True for a name the daemon or a store uses itself inside a per-user namespace."""
    return name.startswith(RESERVED_PREFIXES) or name.casefold() in RESERVED_NAMES


def valid_id(value: object) -> bool:
    """True for a userId/projectId that may be a path component and a key segment: the id rule, not reserved."""
    return isinstance(value, str) and bool(ID_RE.fullmatch(value)) and not is_reserved(value)


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` when it is a valid id; ValueError naming ``what`` otherwise (for the builders of paths
    and keys, the last line behind the API's 400)."""
    if not valid_id(value):
        raise ValueError(f"{what} {value!r} is not a valid id ({ID_RULE})")
    return str(value)


def key_owner_reserved(key: str) -> bool:
    """True when an object key's first segment (the user id of every key the daemon writes) is reserved."""
    return is_reserved(key.split("/", 1)[0])
