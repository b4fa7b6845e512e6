"""Every error the SDK raises, under one root.

    ReelgateClientError                 anything the SDK raises on purpose
    ├── APIConnectionError              the gateway could not be reached (after retries)
    ├── WaitTimeout                     wait() gave up client-side; the job keeps running
    ├── DownloadError                   the downloaded bytes do not match the job's result
    └── ReelgateAPIError                the gateway said no: code, message, status, details
        ├── ValidationError             400: param, allowed
        ├── AuthenticationError         401
        ├── InsufficientCreditsError    402: balance, available, hold_needed, shortfall
        ├── PermissionDeniedError       403
        ├── NotFoundError               404
        ├── ConflictError               409
        ├── RateLimitError              429: retry_after
        ├── ServerError                 5xx
        └── JobFailedError              a job ended badly (status is None; .video holds it)
            ├── RefusedError            error.code "refused": reword, never retried upstream
            ├── QuotaError              error.code "quota": every model in the chain was full
            ├── JobTimeoutError         error.code "timeout": the gateway's deadline passed
            └── JobCanceledError        the job was canceled

This is the SDK's own hierarchy, separate from ``reelgate.errors`` (which is
the server's): an SDK user talks to a gateway over HTTP and must never need the
server's internals to catch what the SDK raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reelgate_client.models import Video

__all__ = [
    "APIConnectionError",
    "AuthenticationError",
    "ConflictError",
    "DownloadError",
    "InsufficientCreditsError",
    "JobCanceledError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaError",
    "RateLimitError",
    "ReelgateAPIError",
    "ReelgateClientError",
    "RefusedError",
    "ServerError",
    "ValidationError",
    "WaitTimeout",
    "error_from_response",
    "job_error",
    "parse_retry_after",
]


class ReelgateClientError(Exception):
    """The root of everything the SDK raises on purpose."""


class APIConnectionError(ReelgateClientError):
    """The gateway could not be reached, or the connection broke, after every retry."""


class DownloadError(ReelgateClientError):
    """The downloaded file is not the job's result (size or sha256 differ)."""


class WaitTimeout(ReelgateClientError):
    """``wait()`` ran out of time on the client side. The job is still running on the
    gateway: wait again, or cancel it."""

    def __init__(self, message: str, *, video_id: str, video: Video | None = None) -> None:
        super().__init__(message)
        self.video_id = video_id
        self.video = video


class ReelgateAPIError(ReelgateClientError):
    """The gateway answered with an error: its stable ``code``, its ``message``, the
    HTTP ``status`` (None for a failed job) and every other field it sent in ``details``."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        where = f" (HTTP {self.status})" if self.status is not None else ""
        return f"[{self.code}]{where} {self.message}"


class ValidationError(ReelgateAPIError):
    """400: a parameter was refused. ``param`` names it; ``allowed`` lists the values
    the model accepts, when the gateway sent them."""

    @property
    def param(self) -> str | None:
        value = self.details.get("param")
        return None if value is None else str(value)

    @property
    def allowed(self) -> list[Any] | None:
        value = self.details.get("allowed")
        return list(value) if isinstance(value, list) else None


class AuthenticationError(ReelgateAPIError):
    """401: the API key is missing, unknown, revoked or expired."""


class InsufficientCreditsError(ReelgateAPIError):
    """402: the account cannot cover the job's hold. Amounts are decimal strings."""

    @property
    def available(self) -> str | None:
        return self._amount("available")

    @property
    def balance(self) -> str | None:
        return self._amount("balance")

    @property
    def hold_needed(self) -> str | None:
        return self._amount("hold_needed")

    @property
    def shortfall(self) -> str | None:
        return self._amount("shortfall")

    def _amount(self, name: str) -> str | None:
        value = self.details.get(name)
        return None if value is None else str(value)


class PermissionDeniedError(ReelgateAPIError):
    """403: the key may not do this (a scope, or a model the account may not use)."""


class NotFoundError(ReelgateAPIError):
    """404: no such job for this account (or no such route)."""


class ConflictError(ReelgateAPIError):
    """409: the job is not in a state that allows this (e.g. no video yet)."""


class RateLimitError(ReelgateAPIError):
    """429: too many requests. ``retry_after`` is the seconds the gateway asked for."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after")) or _number(
            self.details.get("retry_after")
        )


class ServerError(ReelgateAPIError):
    """5xx: the gateway failed; the SDK already retried."""


class JobFailedError(ReelgateAPIError):
    """The job ended without a video. ``video`` is its final state; ``code`` and
    ``message`` are the job's ``error``."""

    def __init__(self, message: str, *, code: str, video: Video) -> None:
        super().__init__(message, code=code, details={"video_id": video.id})
        self.video = video

    @property
    def video_id(self) -> str:
        return self.video.id


class RefusedError(JobFailedError):
    """The provider refused the prompt or image on safety grounds. Fallbacks are
    never tried for a refusal: reword and submit again."""


class QuotaError(JobFailedError):
    """Every model in the chain was out of quota. Add fallbacks or try later."""


class JobTimeoutError(JobFailedError):
    """The gateway's deadline for the job passed (``error.code`` "timeout")."""


class JobCanceledError(JobFailedError):
    """The job was canceled before it finished."""


_BY_STATUS: dict[int, type[ReelgateAPIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}

_BY_JOB_CODE: dict[str, type[JobFailedError]] = {
    "refused": RefusedError,
    "quota": QuotaError,
    "timeout": JobTimeoutError,
}


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


def error_from_response(
    status: int, body: object, headers: Mapping[str, str], fallback_text: str = ""
) -> ReelgateAPIError:
    """The typed error for an error answer ``{"error": {"code", "message", ...}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code") or "http_error")
        message = str(err.get("message") or f"HTTP {status}")
        details = {k: v for k, v in err.items() if k not in ("code", "message")}
    else:
        code = "http_error"
        message = fallback_text.strip()[:500] or f"HTTP {status}"
        details = {}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ReelgateAPIError)
    lowered = {k.lower(): v for k, v in headers.items()}
    return cls(message, code=code, status=status, details=details, headers=lowered)


def job_error(video: Video) -> JobFailedError:
    """The typed error for a job that ended ``failed`` or ``canceled``."""
    if video.status == "canceled":
        return JobCanceledError(f"Video job {video.id} was canceled.", code="canceled", video=video)
    code = video.error.code if video.error else "failed"
    message = video.error.message if video.error else f"Video job {video.id} failed."
    return _BY_JOB_CODE.get(code, JobFailedError)(message, code=code, video=video)
