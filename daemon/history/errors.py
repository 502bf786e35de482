"""The one exception the history package raises, with a reason code."""

from __future__ import annotations

from typing import Any


class HistoryError(Exception):
    """A history operation failed; `code` says why, `message` says what to do about it.

    Codes: unknown_version, version_exists, invalid_version_id, invalid_path, invalid_mode, no_output,
    no_dist, not_a_repo, path_not_empty, dest_not_empty, unsafe_path, corrupt_pack, missing_pack,
    corrupt_repo, history_limit (over a budget of daemon/history/budget.py).
    """

    def __init__(self, code: str, message: str = "", **detail: Any) -> None:
        self.code = code
        self.message = message or code.replace("_", " ")
        self.detail = detail
        super().__init__(f"{code}: {self.message}")
