"""Plans and usage: who is on which plan, one user's usage against it, the month's billing rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core import quotas
from daemon.ops import usage

if TYPE_CHECKING:
    from daemon.runtime import Runtime


class Plans:
    """Plan assignments (stored in state.db, replicated to Postgres) and the usage reports. Methods block."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def assign(self, kind: str, ident: str, plan: Any) -> dict[str, Any]:
        """Put a user or an org (`kind`) on a plan (400 for an unknown plan); applies from its next request."""
        rec = quotas.assign(self._rt.cfg, self._rt.outbox, kind, ident, plan)
        self._rt.sync_nudge()
        return rec

    def report(self, user_id: Any, month: Any = None, org_id: Any = None) -> dict[str, Any]:
        """A user's usage in a month (YYYY-MM, UTC; default this month) against its plan (the org's with org_id)."""
        return usage.report(self._rt.cfg, user_id, month, org_id)

    def export_rows(self, month: Any = None) -> list[dict[str, Any]]:
        """The billing export: one row per user for the month."""
        return usage.export_rows(self._rt.cfg, month)
