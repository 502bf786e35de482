"""Files out of a contract while it is still being written: an incremental scan of the answer text that hands
over each ``{path, content}`` entry of ``templateFiles`` and ``files`` as soon as its closing brace arrives."""

from __future__ import annotations

import json
from typing import Any

FILE_LISTS = ("templateFiles", "files")


class FileScanner:
    """Feed it the answer text piece by piece; ``feed`` returns the entries completed by that piece.

    It only tracks strings and nesting, so prose or a code fence before the object is skipped up to the first
    ``{``. What it returns is a hint, never validated here: the final contract alone decides what is built.
    """

    def __init__(self) -> None:
        self._buf: list[str] = []
        self._pos = 0  # characters scanned (the index in the joined text)
        self._text = ""
        self._depth = 0
        self._started = False
        self._in_string = False
        self._escape = False
        self._string_start = -1
        self._last_key = ""  # the last string closed at depth 1: the key of a following '['
        self._array_key = ""
        self._elem_start = -1
        self._base = 0  # index in the whole text of self._text[0] (text before an entry is dropped)

    def feed(self, piece: str) -> list[dict[str, Any]]:
        """Scan `piece`; the file entries (dicts) it completed, in order."""
        out: list[dict[str, Any]] = []
        text = self._text + piece
        i = self._pos - self._base
        while i < len(text):
            ch = text[i]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif ch == "\\":
                    self._escape = True
                elif ch == '"':
                    self._in_string = False
                    if self._depth == 1:
                        self._last_key = text[self._string_start + 1:i]
            elif not self._started:
                if ch == "{":
                    self._started, self._depth = True, 1
            elif ch == '"':
                self._in_string, self._string_start = True, i
            elif ch in "{[":
                self._depth += 1
                if ch == "[" and self._depth == 2:
                    self._array_key = self._last_key
                elif ch == "{" and self._depth == 3 and self._array_key in FILE_LISTS:
                    self._elem_start = i
            elif ch in "}]":
                self._depth -= 1
                if ch == "}" and self._depth == 2 and self._elem_start >= 0:
                    entry = _entry(text[self._elem_start:i + 1])
                    if entry is not None:
                        out.append(entry)
                    self._elem_start = -1
                elif self._depth == 1:
                    self._array_key = ""
                elif self._depth <= 0:
                    self._started = False  # the object ended: anything after it is prose
            i += 1
        # Keep only what a later entry or key may still need.
        keep_from = min(x for x in (self._elem_start, self._string_start if self._in_string else -1, i) if x >= 0)
        self._base += keep_from
        self._text = text[keep_from:]
        self._string_start -= keep_from
        if self._elem_start >= 0:
            self._elem_start -= keep_from
        self._pos = self._base + (i - keep_from)
        return out


def _entry(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and isinstance(data.get("path"), str) and isinstance(data.get("content"), str):
        return data
    return None
