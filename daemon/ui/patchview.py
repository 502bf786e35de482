"""A unified patch split into per-file, side-by-side rows (old on the left, new on the right)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")


@dataclass
class Row:
    """One row of a side-by-side view; kind: same | change | hunk."""

    kind: str
    old_no: int | None = None
    old: str | None = None
    new_no: int | None = None
    new: str | None = None


@dataclass
class FilePatch:
    """One file's rows."""

    path: str
    rows: list[Row] = field(default_factory=list)
    binary: bool = False


def _flush(rows: list[Row], olds: list[tuple[int, str]], news: list[tuple[int, str]]) -> None:
    """Pair removed lines with added ones, row by row, as side-by-side viewers do."""
    for i in range(max(len(olds), len(news))):
        o = olds[i] if i < len(olds) else (None, None)
        n = news[i] if i < len(news) else (None, None)
        rows.append(Row("change", o[0], o[1], n[0], n[1]))
    olds.clear()
    news.clear()


def side_by_side(patch: str) -> list[FilePatch]:
    """Parse git's unified diff text into files of side-by-side rows."""
    files: list[FilePatch] = []
    cur: FilePatch | None = None
    olds: list[tuple[int, str]] = []
    news: list[tuple[int, str]] = []
    old_no = new_no = 0
    for line in patch.split("\n"):
        if line.startswith("diff --git "):
            if cur is not None:
                _flush(cur.rows, olds, news)
            name = line[len("diff --git "):]
            path = name.split(" b/", 1)[1] if " b/" in name else name
            cur = FilePatch(path)
            files.append(cur)
            continue
        if cur is None:
            continue
        m = _HUNK.match(line)
        if m:
            _flush(cur.rows, olds, news)
            old_no, new_no = int(m.group(1)), int(m.group(2))
            cur.rows.append(Row("hunk", old=line))
        elif line.startswith("Binary files "):
            cur.binary = True
        elif line.startswith(("--- ", "+++ ", "index ", "new file mode", "deleted file mode", "old mode",
                              "new mode", "similarity", "rename ")) and not cur.rows:
            continue
        elif line.startswith("-"):
            olds.append((old_no, line[1:]))
            old_no += 1
        elif line.startswith("+"):
            news.append((new_no, line[1:]))
            new_no += 1
        elif line.startswith(" "):
            _flush(cur.rows, olds, news)
            cur.rows.append(Row("same", old_no, line[1:], new_no, line[1:]))
            old_no += 1
            new_no += 1
    if cur is not None:
        _flush(cur.rows, olds, news)
    return files
