"""Build log text for people: terminal escape sequences removed, the first error line found, a one-line cause."""

from __future__ import annotations

import re

# ECMA-48 in its 7-bit (ESC ...) and 8-bit (C1) forms: control strings (OSC, DCS, SOS, PM, APC) up to their
# terminator (ST, or BEL as xterm allows for OSC), CSI with its parameter, intermediate and final bytes, and the two-
# and three-byte escapes (Fe, Fp, Fs, nF); a lone ESC goes too. An unterminated control string runs to the end of
# its line, so a cut-off OSC 8 hyperlink does not leave its URL behind. One leading character class, the forms told
# apart by lookbehind: the scanner skips plain text fast (3x the plain alternation: a timeline reads 50 log tails).
_STRING = r"[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c|(?=[\x1b\n])|$)"
_CSI = r"[0-?]*[ -/]*[@-~]"
_ANSI = re.compile(r"[\x1b\x90-\x9f](?:(?<=\x1b)(?:[\]PX^_]" + _STRING + r"|\[" + _CSI + r"|[ -/]*[0-~])?"
                   r"|(?<=[\x90\x98\x9d\x9e\x9f])" + _STRING + r"|(?<=\x9b)" + _CSI + ")")
# Other control characters a terminal would not print (tab and newline stay; \r is handled per line).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]")

# What may precede an error word at the start of a line: timestamps, [tags], and the marks tools print.
_LEAD = r"^\s*(?:\[[^\]]*\]:?\s*|\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\s*|\d\d:\d\d:\d\d(?:[.,]\d+)?\s*|[✘✖×x!│|]\s+)*"
# A small heuristic, tested line by line in tests/unit/daemon/test_logtext.py: tsc's "error TS2304", node's and pnpm's
# ERR_ codes, "failed:" (vite's "Build failed:", the daemon's own last line), and an error word opening the line
# ("error during build:", "Error: Cannot find module", "TypeError:", esbuild's "✘ [ERROR]"). Not "0 errors",
# not "error-page.tsx" in a file list.
_ERROR = re.compile(
    r"\berror TS\d+\b"
    r"|\bERR_[A-Z0-9_]{3,}"
    r"|\bfailed:"
    r"|" + _LEAD + r"\[?(?:[A-Z][A-Za-z]*Error|[Ee]rror|ERROR)(?=[\s:\]\[(]|$)"
)
CAUSE_CHARS = 200


def strip_ansi(text: str) -> str:
    """The text without terminal escape sequences and control characters; a line rewritten with carriage returns
    keeps what the terminal would have shown last."""
    text = _CONTROLS.sub("", _ANSI.sub("", text))
    if "\r" not in text:
        return text
    out = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p]
        out.append(parts[-1] if parts else "")
    return "\n".join(out)


def is_error(line: str) -> bool:
    """Whether a (stripped) log line looks like an error report."""
    # Most lines hold none of the words: the substring tests spare them the regex (the timeline reads 50 tails).
    if "rror" not in line and "RROR" not in line and "ERR_" not in line and "failed:" not in line:
        return False
    if line.startswith("> "):  # pnpm's echo of the script it runs: its words are a command, not an outcome
        return False
    return _ERROR.search(line) is not None


def first_error(lines: list[str]) -> int | None:
    """The index of the first line that looks like an error, or None."""
    for i, line in enumerate(lines):
        if is_error(line):
            return i
    return None


def error_line(lines: list[str]) -> str | None:
    """The first error line, trimmed to one short line; a line that only announces ("error during build:") is
    joined with the next non-blank line, which says what went wrong."""
    i = first_error(lines)
    if i is None:
        return None
    text = lines[i].strip()
    if text.endswith(":"):
        nxt = next((s.strip() for s in lines[i + 1:i + 4] if s.strip()), "")
        text = f"{text} {nxt}".strip()
    return one_line(text)


def one_line(text: str) -> str:
    """The first non-blank line of a text, cut to CAUSE_CHARS."""
    first = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return first if len(first) <= CAUSE_CHARS else first[:CAUSE_CHARS - 1] + "…"


# Failures raised on a tool's exit status: the message says only "pnpm build exited 1", the tool's own output says why.
TOOL_REASONS = frozenset({"build_failed", "install_failed"})


def cause(reason: str | None, message: str | None, log_tail: str) -> str:
    """One line saying why a version failed: the tool's first error line for a tool's failure, else the version's
    failure message, else the first error line of its log; "" when none says anything."""
    # The daemon's own closing "failed: <reason>: <message>" line repeats the message: the tool's lines are sought.
    lines = [s for s in strip_ansi(log_tail).split("\n") if not s.startswith("[previewd ")]
    found = error_line(lines) if lines else None
    said = one_line(strip_ansi(message or ""))
    if found and (reason in TOOL_REASONS or not said):
        return found
    return said
