"""Limits on how fast an API key may call: per-key request rates (``rate``)."""

from reelgate.limits.rate import (
    DEFAULT_KEY_PREFIX,
    LocalMovingWindow,
    RateDecision,
    RateLimited,
    RateLimiter,
    RateLimiterUnavailable,
    enforce,
    retry_after_header,
)

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "LocalMovingWindow",
    "RateDecision",
    "RateLimited",
    "RateLimiter",
    "RateLimiterUnavailable",
    "enforce",
    "retry_after_header",
]
