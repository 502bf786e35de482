"""Replica backends behind the Replica Protocol (Postgres; none = history stays in SQLite)."""

from sync.replica.base import RECORD_FIELDS, STATUSES, Replica, validate_record
from sync.replica.postgres import PostgresReplica

__all__ = ["RECORD_FIELDS", "STATUSES", "PostgresReplica", "Replica", "validate_record"]
