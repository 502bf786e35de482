"""The sync exception tree: every failure carries a reason code, a message and, for remotes, retryability."""

from __future__ import annotations

from collections.abc import Sequence


class SyncError(Exception):
    """Base of every sync failure: ``code`` is a stable reason code, ``hint`` says what to try."""

    code = "sync_error"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        return f"{text} (Try: {self.hint})" if self.hint else text


class ConfigError(SyncError, ValueError):
    """A backend name or option is invalid."""

    code = "invalid_config"


class InvalidKey(SyncError, ValueError):
    """A KV or object key breaks the key rules (empty, ``..`` segment, too long, ...)."""

    code = "invalid_key"


class InvalidRecord(SyncError, ValueError):
    """A version record handed to the replica lacks a field or holds a value of the wrong kind."""

    code = "invalid_record"


class NotFound(SyncError, LookupError):
    """The object or key asked for does not exist."""

    code = "not_found"


class RemoteError(SyncError):
    """A remote store (Postgres, KV REST, S3) failed; ``retryable`` says whether trying later can help."""

    code = "remote_error"

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{operation}: {message}", code=code, hint=hint)
        self.operation = operation
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class BatchFailure(SyncError):
    """Raised by an outbox handler that got part of a batch through.

    ``done_ids`` are the outbox item ids that were delivered; ``poison_id`` names one item that can never be
    delivered (bad payload, missing file): the outbox parks it as dead instead of retrying it forever.
    """

    code = "batch_failed"

    def __init__(self, cause: BaseException, *, done_ids: Sequence[int] = (), poison_id: int | None = None) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.done_ids = list(done_ids)
        self.poison_id = poison_id
