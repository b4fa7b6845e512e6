"""Every error reelgate raises on purpose, under one root.

    ReelgateError                      code, message, http_status, details
    ├── ApiError                       an answer to a client (4xx)
    │   ├── ValidationFailed           400 invalid_parameter / unknown_model / ...
    │   ├── Unauthorized               401 unauthorized
    │   ├── Forbidden                  403 forbidden
    │   ├── PaymentRequired            402 insufficient_credits
    │   ├── NotFound                   404 not_found
    │   ├── Conflict                   409 conflict
    │   ├── Gone                       410 gone (an upstream's result that expired) /
    │   │                                  model_retired (a model its provider retired)
    │   ├── PayloadTooLarge            413 payload_too_large
    │   ├── UnsupportedMediaType       415 unsupported_media_type
    │   └── TooManyInFlight            429 too_many_jobs_in_flight / too_many_seconds_in_flight
    ├── ServiceUnavailable             503: reelgate itself cannot serve now; retry
    │   ├── DatabaseUnavailable        503 database_unavailable (refused, cut, frozen, locked)
    │   └── BadGateway                 502 upstream_unavailable (streaming from a provider)
    ├── ProviderError                  an upstream outcome, classified (see ErrorClass)
    │   ├── Refused                    safety / moderation: fail, never fall back
    │   ├── QuotaExceeded              429 and throttling: cool down, fall back
    │   ├── TransientError             5xx, network, malformed answer: retry, then fall back
    │   ├── InvalidRequest             other 4xx: fail with the upstream message
    │   ├── ModelGone                  the model is no longer served there: fall back
    │   │   └── ModelChanged           a synced model's schema no longer takes the job
    │   └── UpstreamTimeout            the job's deadline passed
    └── StorageError                   the object store failed (mirroring, signing)
        └── NotAVideo                  mirrored bytes are not a playable video

The API turns any of them into ``{"error": {"code", "message", ...details}}``.
This module must never format secrets into a message.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "ApiError",
    "BadGateway",
    "Conflict",
    "DatabaseUnavailable",
    "ErrorClass",
    "Forbidden",
    "Gone",
    "InvalidRequest",
    "ModelChanged",
    "ModelGone",
    "NotAVideo",
    "NotFound",
    "PayloadTooLarge",
    "PaymentRequired",
    "ProviderError",
    "QuotaExceeded",
    "ReelgateError",
    "Refused",
    "ServiceUnavailable",
    "StorageError",
    "TooManyInFlight",
    "TransientError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamTimeout",
    "ValidationFailed",
    "idempotency_taken_over",
]


class ReelgateError(Exception):
    code: str = "internal_error"
    http_status: int = 500
    lasting: bool = True
    """Whether the same request gets the same answer later: an Idempotency-Key stores a
    lasting client error for its replays. False for a refusal that time or an operator
    lifts (a budget's cap), which a retry with the same key must reach again."""

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


class ApiError(ReelgateError):
    http_status = 400
    code = "bad_request"


class ValidationFailed(ApiError):
    http_status = 400
    code = "invalid_parameter"


class Unauthorized(ApiError):
    http_status = 401
    code = "unauthorized"


class PaymentRequired(ApiError):
    http_status = 402
    code = "insufficient_credits"


class Forbidden(ApiError):
    http_status = 403
    code = "forbidden"


class NotFound(ApiError):
    http_status = 404
    code = "not_found"


class Conflict(ApiError):
    http_status = 409
    code = "conflict"


def idempotency_taken_over() -> Conflict:
    """A handler's Idempotency-Key lease ran out and a retry took the key over: this
    attempt's work is rolled back, and the client learns to retry with the same key."""
    return Conflict(
        "This request took longer than its Idempotency-Key lease and a retry took "
        "the key over; nothing was done by this attempt. Retry with the same key to "
        "get the outcome.",
        code="idempotency_in_progress",
        retry_after=1,
    )


class Gone(ApiError):
    http_status = 410
    code = "gone"


class PayloadTooLarge(ApiError):
    http_status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    http_status = 415
    code = "unsupported_media_type"


class TooManyInFlight(ApiError):
    http_status = 429
    code = "too_many_jobs_in_flight"


class ServiceUnavailable(ReelgateError):
    """reelgate cannot serve this now but will again: the client should retry after
    ``retry_after`` seconds. Nothing the client sent was kept."""

    http_status = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float = 2.0, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"


class BadGateway(ServiceUnavailable):
    http_status = 502
    code = "upstream_unavailable"


class ErrorClass(enum.StrEnum):
    """How an upstream outcome steers the engine (DESIGN.md, 'Errors decide')."""

    REFUSED = "refused"
    QUOTA = "quota"
    TRANSIENT = "transient"
    INVALID = "invalid"
    TIMEOUT = "timeout"
    GONE = "gone"
    """The upstream no longer serves this model (retired, removed, not deployed)."""


class ProviderError(ReelgateError):
    """An upstream outcome. ``error_class`` decides what the engine does next, with:

    - ``terminal``: the upstream job itself ended failed; polling it again cannot
      help (the engine goes straight to the fallback, or fails);
    - ``ambiguous``: a create was sent and its answer lost; the upstream job may
      exist (``engine.lost_creates`` settles it, never a blind re-send);
    - ``retry_after``: seconds the provider asked us to wait.

    ``details`` carries what the client may read besides (``flagged``: what a refusal
    flagged; ``upstream_id``; the provider's own ``upstream_code``).
    """

    error_class: ErrorClass = ErrorClass.TRANSIENT
    code = "upstream_error"
    http_status = 502
    marks_unavailable = False
    """A gone answer marks the model unavailable on its route for a while."""
    cost_usd: str | None = None
    """What the provider billed for the failed job, where it says so (xAI bills a render
    its moderation withheld): recorded as the job's upstream cost, a loss. Never shown to
    the client."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        terminal: bool = False,
        ambiguous: bool = False,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, **details)
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.terminal = terminal
        self.ambiguous = ambiguous

    def with_message(self, message: str) -> ProviderError:
        """The same error (class, code and every field) with another message."""
        copy = type(self)(
            message,
            code=self.code,
            upstream_status=self.upstream_status,
            retry_after=self.retry_after,
            terminal=self.terminal,
            ambiguous=self.ambiguous,
            **self.details,
        )
        copy.cost_usd = self.cost_usd
        return copy


class Refused(ProviderError):
    error_class = ErrorClass.REFUSED
    code = "refused"


class QuotaExceeded(ProviderError):
    error_class = ErrorClass.QUOTA
    code = "quota"


class TransientError(ProviderError):
    error_class = ErrorClass.TRANSIENT
    code = "upstream_unavailable"


class InvalidRequest(ProviderError):
    error_class = ErrorClass.INVALID
    code = "upstream_invalid"


class ModelGone(ProviderError):
    """The provider says this model is not served there (any more): a 404 model not
    found, "is no longer available", a missing Azure deployment, DashScope's "Model not
    exist". Another model may well take the job, so the engine falls back as for
    quota, and marks the route and model unavailable for a long while."""

    error_class = ErrorClass.GONE
    code = "model_gone"
    marks_unavailable = True


class ModelChanged(ModelGone):
    """A synced model's schema changed since the job was accepted and no longer takes
    it (``catalog.synced.check.native_input``): nothing was sent. The job falls back as
    for a gone model; the model is not marked unavailable (it serves other requests)."""

    code = "model_changed"
    marks_unavailable = False


class UpstreamTimeout(ProviderError):
    error_class = ErrorClass.TIMEOUT
    code = "timeout"


class StorageError(ReelgateError):
    code = "storage_error"


class NotAVideo(StorageError):
    code = "not_a_video"
