"""Fail early, with a hint, when the Python running `make` is older than the daemon needs."""

import sys

if sys.version_info < (3, 11):
    sys.exit(f"previewd needs Python 3.11+, found {sys.version.split()[0]}; set PYTHON=python3.11 (or newer)")
