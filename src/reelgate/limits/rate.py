"""Per-API-key request rate limits, counted in memory or in a Redis every API process shares.

Moving windows: exact counts. With a Redis URL, the ``limits`` package's
moving-window strategy keeps one Redis list per key and limit, trimmed and
expired by Redis itself. Without one, the counts live in this process only
(``LocalMovingWindow``), which is right for a single API process and wrong for
several (each would allow the full rate).

This module must never fail open: if the shared store cannot be reached, the
check raises ``RateLimiterUnavailable`` (503) instead of letting a request by,
and startup (``check``) says so before the first request. It must never put a
Redis password into a message either.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError as _LimitsStorageError
from limits.util import WindowStats

from reelgate.errors import ApiError, ReelgateError, ServiceUnavailable

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

DEFAULT_KEY_PREFIX = "reelgate:rate"
_HEALTH_KEY = "healthcheck"
# What a dead or unreachable Redis raises through `limits` (wrap_exceptions=True)
# or straight from the socket layer (TimeoutError is an OSError).
_BACKEND_ERRORS = (_LimitsStorageError, OSError)


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer to one hit: let it through, or say when to come back."""

    allowed: bool
    limit: str
    """The binding limit, e.g. "20 per 1 second": the one that denied, or the tightest."""
    remaining: int
    """Requests left in the binding limit's window (0 when denied)."""
    retry_after_seconds: int
    """0 when allowed; when denied, whole seconds (>= 1) until the hit would fit again."""


class RateLimited(ApiError):
    http_status = 429
    code = "rate_limited"

    def __init__(self, decision: RateDecision) -> None:
        seconds = max(1, decision.retry_after_seconds)
        unit = "second" if seconds == 1 else "seconds"
        super().__init__(
            f"Too many requests: this API key is limited to {decision.limit}. "
            f"Retry in {seconds} {unit}.",
            retry_after=seconds,
            limit=decision.limit,
        )
        self.retry_after = seconds
        self.decision = decision


class RateLimiterUnavailable(ServiceUnavailable):
    """The shared rate-limit store (Redis) cannot be reached: refuse, never wave through."""

    http_status = 503
    code = "rate_limiter_unavailable"


class LocalMovingWindow:
    """The moving window in this process, with the ``limits`` strategy's interface and
    answers (a hit fits when the entries of the last ``expiry`` seconds plus ``cost`` stay
    within the amount; the window resets when its oldest entry expires).

    Not ``limits.aio.storage.MemoryStorage``: that one starts a task on every hit that
    hops to a thread to expire entries, about a tenth of a submit's CPU (make bench).
    Here each key's entries are pruned as they are touched, and idle keys now and then.
    """

    _SWEEP_EVERY = 4096

    def __init__(self) -> None:
        # (key, amount, expiry) -> runs of (time, count), oldest first, and their total
        self._windows: dict[tuple[str, int, int], tuple[deque[tuple[float, int]], list[int]]] = {}
        self._touches = 0

    async def hit(self, item: RateLimitItem, key: str, cost: int = 1) -> bool:
        now = time.time()
        runs, total = self._live(item, key, now)
        if total[0] + cost > item.amount:
            return False
        runs.append((now, cost))
        total[0] += cost
        return True

    async def get_window_stats(self, item: RateLimitItem, key: str) -> WindowStats:
        now = time.time()
        runs, total = self._live(item, key, now)
        start = runs[0][0] if runs else now
        return WindowStats(start + item.get_expiry(), item.amount - total[0])

    def _live(
        self, item: RateLimitItem, key: str, now: float
    ) -> tuple[deque[tuple[float, int]], list[int]]:
        expiry = item.get_expiry()
        self._touches += 1
        if self._touches % self._SWEEP_EVERY == 0:
            self._sweep(now)
        window = self._windows.get((key, item.amount, expiry))
        if window is None:
            window = self._windows[(key, item.amount, expiry)] = (deque(), [0])
        runs, total = window
        cutoff = now - expiry  # an entry at exactly the cutoff still counts, as in limits
        while runs and runs[0][0] < cutoff:
            total[0] -= runs.popleft()[1]
        return window

    def _sweep(self, now: float) -> None:
        """Forget keys whose every entry has expired (API keys come and go)."""
        for ident, (runs, _) in list(self._windows.items()):
            if not runs or runs[-1][0] < now - ident[2]:
                del self._windows[ident]


class RateLimiter:
    """Counts hits per API key against every configured limit (e.g. "120/minute;20/second")."""

    def __init__(
        self,
        limits: str,
        *,
        redis_url: str | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        timeout_seconds: float = 1.0,
    ) -> None:
        self._items = _parse_limits(limits)
        self._storage: RedisStorage | None = None
        self._strategy: MovingWindowRateLimiter | LocalMovingWindow
        if redis_url:
            self.backend = _redact(redis_url)
            self._storage = RedisStorage(
                _async_uri(redis_url),
                wrap_exceptions=True,
                key_prefix=key_prefix,
                connect_timeout=timeout_seconds,
                stream_timeout=timeout_seconds,
            )
            self._strategy = MovingWindowRateLimiter(self._storage)
        else:
            self.backend = "memory"
            self._strategy = LocalMovingWindow()

    @classmethod
    def from_url(cls, redis_url: str | None, limits: str) -> RateLimiter:
        """In memory when ``redis_url`` is empty or None, in that Redis otherwise."""
        return cls(limits, redis_url=redis_url)

    @property
    def limits(self) -> tuple[str, ...]:
        return tuple(str(item) for item in self._items)

    async def check(self) -> None:
        """Reach the store once; call at startup so a wrong Redis URL stops the process."""
        if self._storage is None:
            return
        try:
            await self._storage.get(_HEALTH_KEY)
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def hit(self, key_id: str, *, cost: int = 1) -> RateDecision:
        """Count ``cost`` requests for ``key_id`` if every limit has room for them.

        A refused hit is not counted by the limit that refused it, so hammering
        does not push the retry time further out.
        """
        self._check_cost(cost)
        try:
            # Shortest window first: a refusal by a long window then wastes only
            # short-window budget, which comes back within seconds.
            for item in self._items:
                if not await self._strategy.hit(item, key_id, cost=cost):
                    return await self._denied(key_id, cost)
            stats = await self._stats(key_id)
        except _BACKEND_ERRORS as exc:
            raise self._unavailable(exc) from exc
        remaining, item = min(
            ((s.remaining, i) for s, i in zip(stats, self._items, strict=True)),
            key=lambda pair: pair[0],
        )
        return RateDecision(
            allowed=True, limit=str(item), remaining=max(0, remaining), retry_after_seconds=0
        )

    async def aclose(self) -> None:
        storage = self._storage
        if storage is not None:
            get_connection = getattr(storage.bridge, "get_connection", None)
            if get_connection is not None:
                get_connection().connection_pool.disconnect()

    async def _stats(self, key_id: str) -> list[WindowStats]:
        return list(
            await asyncio.gather(
                *(self._strategy.get_window_stats(item, key_id) for item in self._items)
            )
        )

    async def _denied(self, key_id: str, cost: int) -> RateDecision:
        # Wait for the latest of the full windows, so the retry is not refused by a longer one.
        # The moving window frees its oldest entry at reset_time; for cost > 1 that is a floor.
        now = time.time()
        stats = await self._stats(key_id)
        full = [(s, i) for s, i in zip(stats, self._items, strict=True) if s.remaining < cost]
        if not full:  # freed between the refusal and the look: a prompt retry will do
            return RateDecision(
                allowed=False, limit=str(self._items[0]), remaining=0, retry_after_seconds=1
            )
        wait, item = max(((s.reset_time - now, i) for s, i in full), key=lambda pair: pair[0])
        return RateDecision(
            allowed=False,
            limit=str(item),
            remaining=0,
            retry_after_seconds=max(1, math.ceil(wait)),
        )

    def _check_cost(self, cost: int) -> None:
        if cost < 1:
            raise ValueError(f"cost must be at least 1, not {cost}")
        for item in self._items:
            if cost > item.amount:
                raise ValueError(f"cost {cost} can never fit the limit {item}")

    def _unavailable(self, exc: BaseException) -> RateLimiterUnavailable:
        cause = getattr(exc, "storage_error", None) or exc
        return RateLimiterUnavailable(
            f"The rate limiter cannot reach its store at {self.backend} "
            f"({type(cause).__name__}: {_redact_text(str(cause))}); requests are refused "
            "until it is back. Check REELGATE_REDIS_URL and that Redis is running.",
            backend=self.backend,
        )


async def enforce(limiter: RateLimiter, key_id: str, *, cost: int = 1) -> None:
    """Count one request for an authenticated key; raise ``RateLimited`` when over a limit."""
    decision = await limiter.hit(key_id, cost=cost)
    if not decision.allowed:
        raise RateLimited(decision)


def retry_after_header(exc: BaseException) -> dict[str, str]:
    """The ``Retry-After`` header an error response should carry (empty if none applies)."""
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, ServiceUnavailable):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, ReelgateError) and isinstance(exc.details.get("retry_after"), int):
        return {"Retry-After": str(exc.details["retry_after"])}
    return {}


def _parse_limits(spec: str) -> Sequence[RateLimitItem]:
    try:
        items = parse_many(spec) if spec.strip() else []
    except ValueError:
        items = []
    if not items:
        raise ValueError(
            f"Invalid rate limit {spec!r}: expected e.g. '120/minute;20/second' "
            "(amount/unit, several separated by ';')."
        )
    return sorted(items, key=lambda item: item.get_expiry())


def _async_uri(url: str) -> str:
    """``redis://`` → ``async+redis://``, the scheme ``limits`` routes to its asyncio storage."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"Not a Redis URL: {_redact(url)!r}")
    if scheme.startswith("async+"):
        return url
    if scheme == "unix":
        return f"async+redis+unix://{rest}"
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"Not a Redis URL (redis://, rediss:// or unix://): {_redact(url)!r}")
    return f"async+{url}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _redact_text(text: str) -> str:
    # Client errors may quote the URL they were given; keep any password out of the message.
    return " ".join(_redact(word) if "://" in word else word for word in text.split(" "))
