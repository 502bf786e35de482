"""The daemon's exception tree: each client error carries its HTTP status and a stable code."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of every error the API turns into `{"error": {"code", "message", ...}}`."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.headers["Retry-After"] = str(retry_after)


class Unavailable(AppError):
    status = 503
    code = "unavailable"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message, **extra)
        if extra.get("retry_after") is not None:  # a pause after which it is worth asking again
            self.headers["Retry-After"] = str(extra["retry_after"])


class QuotaExceeded(AppError):
    """A plan's quota refuses the build (429): names the quota, the used and limit figures and when it resets."""

    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)
        self.headers["Retry-After"] = str(retry_after)
