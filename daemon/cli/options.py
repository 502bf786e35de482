"""Options `previewd` and `daemonctl` accept both before and after the subcommand (issue 13, item 5)."""

from __future__ import annotations

import argparse


def global_options(parser: argparse.ArgumentParser, options: dict[str, str]) -> argparse.ArgumentParser:
    """Add each flag (name -> help) to ``parser``; return a parent parser for every subcommand with the same flags.

    The subcommands' copies default to SUPPRESS: an absent flag after the subcommand leaves what came before it
    (`previewd --config F serve`), a present one sets it (`previewd serve --config F`); the top-level default
    is None.
    """
    parent = argparse.ArgumentParser(add_help=False)
    for flag, help_text in options.items():
        parser.add_argument(flag, help=help_text)
        parent.add_argument(flag, default=argparse.SUPPRESS, help=help_text)
    return parent
