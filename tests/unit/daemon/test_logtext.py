"""Build log text for people: escape sequences stripped in every ECMA-48 form, the first error line found by a small
heuristic (real tool output on both sides), the one-line cause of a failure."""

from __future__ import annotations

import pytest

from daemon.core.logtext import CAUSE_CHARS, cause, error_line, first_error, is_error, strip_ansi

ESC = "\x1b"


@pytest.mark.parametrize(("raw", "clean"), [
    (f"{ESC}[36mvite v5.4.2 {ESC}[32mbuilding for production...{ESC}[39m", "vite v5.4.2 building for production..."),
    (f"{ESC}[1;31merror{ESC}[0m TS2304", "error TS2304"),  # several parameters
    (f"{ESC}[38;2;255;0;0mred{ESC}[m", "red"),  # truecolour, bare reset
    (f"{ESC}[2K{ESC}[1Gdone", "done"),  # erase line, cursor column
    (f"{ESC}[?25lhidden cursor{ESC}[?25h", "hidden cursor"),  # private parameters
    (f"{ESC}[1 qblock", "block"),  # an intermediate byte before the final
    (f"{ESC}]8;;https://example.com{ESC}\\link{ESC}]8;;{ESC}\\", "link"),  # OSC 8 hyperlink ended by ST
    (f"{ESC}]0;window title\x07after", "after"),  # OSC ended by BEL
    (f"{ESC}]8;;https://cut.example", ""),  # an unterminated OSC runs to the end of the line only
    (f"{ESC}Pq#0;2;0;0;0{ESC}\\x", "x"),  # DCS
    (f"{ESC}_apc data{ESC}\\y", "y"),  # APC
    (f"{ESC}7saved{ESC}8", "saved"),  # Fp: save/restore cursor
    (f"{ESC}(Bascii", "ascii"),  # nF: designate a character set
    ("\x9b31mC1 csi\x9b0m", "C1 csi"),  # the 8-bit CSI
    ("\x9d0;title\x9cz", "z"),  # the 8-bit OSC and ST
    ("progress 10%\rprogress 50%\rprogress 100%", "progress 100%"),  # what the terminal showed last
    ("bell\x07 and backspace\x08", "bell and backspace"),
    ("tab\tkept", "tab\tkept"),
    (f"one{ESC}[0m\ntwo{ESC}]8;;u\nthree", "one\ntwo\nthree"),  # an unterminated OSC keeps the next lines
])
def test_strip_ansi(raw: str, clean: str) -> None:
    assert strip_ansi(raw) == clean


@pytest.mark.parametrize("line", [
    "src/App.tsx(3,7): error TS2322: Type 'string' is not assignable to type 'number'.",
    "src/main.ts:1:20 - error TS2307: Cannot find module './missing'",
    "error during build:",
    "Error: Cannot find module 'react-dom/client'",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "SyntaxError: Unexpected token '<'",
    " ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL  site@0.0.0 build: `vite build`",
    "code: 'ERR_MODULE_NOT_FOUND'",
    "✘ [ERROR] Could not resolve \"./nope\"",
    "x Build failed in 1.23s",  # not a marker...
    "Build failed: 1 error",
    "[previewd 2026-12-07 14:03:23.123Z] failed: build_failed: pnpm build exited 1",
    "2026-12-07T14:03:23.123Z error: something broke",
    "14:03:23 [vite] error: transform failed",
    "ERROR  Command failed with exit code 1.",
])
def test_error_lines(line: str) -> None:
    expected = not line.startswith("x Build failed in")
    assert is_error(line) is expected


@pytest.mark.parametrize("line", [
    "Found 0 errors. Watching for file changes.",
    "✓ 31 modules transformed.",
    "dist/assets/error-page-4f2a.js  1.20 kB │ gzip: 0.61 kB",
    "src/components/ErrorBoundary.tsx",
    "no errors found",
    "warning: the error handler is deprecated",
    "[previewd 2026-12-07 14:03:23.123Z] install: pnpm install --frozen-lockfile",
    "onerror handlers installed",
    "> site@0.0.0 build /work/site",
    "> tsc --noEmit || echo 'error TS: see above'",  # pnpm echoes the script: a command, not its outcome
])
def test_ordinary_lines_are_not_errors(line: str) -> None:
    assert not is_error(line)


VITE_FAIL = """\
> site@0.0.0 build /work/site
> vite build

vite v5.4.2 building for production...
✓ 3 modules transformed.
error during build:
[vite]: Rollup failed to resolve import "react-router" from "src/main.tsx".
    at viteWarn (node_modules/vite/dist/node/chunks/dep.js:65589:17)
 ERR_PNPM_RECURSIVE_RUN_FIRST_FAIL  site@0.0.0 build: `vite build`
[previewd 2026-12-07 14:03:23.123Z] failed: build_failed: pnpm build exited 1
"""


def test_first_error_and_its_line() -> None:
    lines = VITE_FAIL.split("\n")
    assert first_error(lines) == 5
    # "error during build:" only announces: the next line says what went wrong
    assert error_line(lines) == 'error during build: [vite]: Rollup failed to resolve import "react-router" from ' \
                                '"src/main.tsx".'
    assert first_error(["all good", "done"]) is None and error_line([]) is None


def test_cause_prefers_the_tools_line_for_a_tools_failure() -> None:
    colored = VITE_FAIL.replace("error during build:", f"{ESC}[31merror during build:{ESC}[39m")
    assert cause("build_failed", "pnpm build exited 1", colored).startswith("error during build: [vite]: Rollup")
    # the daemon's own closing line repeats the message: it is not taken as the tool's error
    only_ours = "vite build\n[previewd 2026-12-07 14:03:23.123Z] failed: build_failed: pnpm build exited 1\n"
    assert cause("build_failed", "pnpm build exited 1", only_ours) == "pnpm build exited 1"
    # a failure the daemon named itself keeps its message; a log error line helps only when there is none
    assert cause("interrupted", "droplet b lost the lease\nsecond line", VITE_FAIL) == "droplet b lost the lease"
    assert cause("deploy_failed", None, "Error: wrangler: 403 Forbidden\n") == "Error: wrangler: 403 Forbidden"
    assert cause("timeout", "", "") == ""
    long = cause("invalid_output", "x" * 500, "")
    assert len(long) == CAUSE_CHARS and long.endswith("…")
