"""Version history in git (dulwich): source snapshots, the dist window, diffs and packs for restore."""

from daemon.history.errors import HistoryError
from daemon.history.locks import lock_for
from daemon.history.repo import ProjectRepo

__all__ = ["HistoryError", "ProjectRepo", "lock_for"]
