"""Per-key rate limits counted in this process's memory (no Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from reelgate.errors import ApiError, NotFound
from reelgate.limits import (
    RateLimited,
    RateLimiter,
    enforce,
    retry_after_header,
)


@pytest.fixture
async def make_limiter() -> AsyncIterator[Callable[[str], RateLimiter]]:
    made: list[RateLimiter] = []

    def make(limits: str) -> RateLimiter:
        limiter = RateLimiter(limits)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


async def test_burst_beyond_the_limit_is_denied_with_a_one_second_retry(
    make_limiter: Callable[[str], RateLimiter],
) -> None:
    limiter = make_limiter("3/second;100/minute")
    allowed = [await limiter.hit("key_a") for _ in range(3)]
    assert [d.allowed for d in allowed] == [True, True, True]
    assert [d.remaining for d in allowed] == [2, 1, 0]

    denied = await limiter.hit("key_a")
    assert not denied.allowed
    assert denied.limit == "3 per 1 second"
    assert denied.remaining == 0
    assert denied.retry_after_seconds == 1


async def test_retry_after_tracks_the_window_that_refused(
    make_limiter: Callable[[str], RateLimiter],
) -> None:
    limiter = make_limiter("10/second;3/minute")
    for _ in range(3):
        assert (await limiter.hit("key_a")).allowed
    denied = await limiter.hit("key_a")
    assert not denied.allowed
    assert denied.limit == "3 per 1 minute"
    assert 58 <= denied.retry_after_seconds <= 60


async def test_keys_are_counted_separately(make_limiter: Callable[[str], RateLimiter]) -> None:
    limiter = make_limiter("2/minute")
    for _ in range(2):
        assert (await limiter.hit("key_a")).allowed
    assert not (await limiter.hit("key_a")).allowed

    other = await limiter.hit("key_b")
    assert other.allowed
    assert other.remaining == 1


async def test_window_frees_up_after_it_passes_despite_hammering(
    make_limiter: Callable[[str], RateLimiter],
) -> None:
    limiter = make_limiter("2/second")
    assert (await limiter.hit("key_a")).allowed
    assert (await limiter.hit("key_a")).allowed
    # Refused hits must not count, or a client retrying too early would never get in.
    for _ in range(10):
        assert not (await limiter.hit("key_a")).allowed
    await asyncio.sleep(1.05)
    again = await limiter.hit("key_a")
    assert again.allowed
    assert again.remaining == 1


async def test_concurrent_hits_never_exceed_the_limit(
    make_limiter: Callable[[str], RateLimiter],
) -> None:
    limiter = make_limiter("5/minute")
    decisions = await asyncio.gather(*(limiter.hit("key_a") for _ in range(20)))
    assert sum(d.allowed for d in decisions) == 5


async def test_cost_counts_several_requests_at_once(
    make_limiter: Callable[[str], RateLimiter],
) -> None:
    limiter = make_limiter("3/minute")
    first = await limiter.hit("key_a", cost=2)
    assert first.allowed
    assert first.remaining == 1
    assert not (await limiter.hit("key_a", cost=2)).allowed
    assert (await limiter.hit("key_a", cost=1)).allowed


@pytest.mark.parametrize("cost", [0, -1, 4])
async def test_cost_that_can_never_fit_is_a_programming_error(
    make_limiter: Callable[[str], RateLimiter], cost: int
) -> None:
    limiter = make_limiter("3/minute")
    with pytest.raises(ValueError, match="cost"):
        await limiter.hit("key_a", cost=cost)


@pytest.mark.parametrize("spec", ["", "  ", "lots", "5 per fortnight", "120/minute;oops"])
def test_invalid_limit_string_is_refused_at_construction(spec: str) -> None:
    with pytest.raises(ValueError, match="Invalid rate limit"):
        RateLimiter(spec)


async def test_without_a_redis_url_counts_in_memory() -> None:
    for url in (None, ""):
        limiter = RateLimiter.from_url(url, "120/minute;20/second")
        try:
            assert limiter.backend == "memory"
            assert limiter.limits == ("20 per 1 second", "120 per 1 minute")
            await limiter.check()
        finally:
            await limiter.aclose()


async def test_enforce_raises_rate_limited_as_a_429_with_retry_after(
    make_limiter: Callable[[str], RateLimiter],
) -> None:
    limiter = make_limiter("1/minute")
    await enforce(limiter, "key_a")
    with pytest.raises(RateLimited) as info:
        await enforce(limiter, "key_a")

    exc = info.value
    assert isinstance(exc, ApiError)
    assert exc.http_status == 429
    assert exc.code == "rate_limited"
    assert 58 <= exc.retry_after <= 60
    assert "1 per 1 minute" in exc.message
    assert f"Retry in {exc.retry_after} seconds" in exc.message
    body = exc.to_dict()
    assert body["code"] == "rate_limited"
    assert body["retry_after"] == exc.retry_after
    assert body["limit"] == "1 per 1 minute"
    assert retry_after_header(exc) == {"Retry-After": str(exc.retry_after)}


def test_retry_after_header_is_empty_for_other_errors() -> None:
    assert retry_after_header(NotFound("nope")) == {}
    assert retry_after_header(RuntimeError("boom")) == {}


async def test_the_local_window_answers_as_the_limits_packages_memory_storage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same hits at the same (moved) clock: same allow/deny, remaining and reset as
    ``limits``' own moving window over its async MemoryStorage, which it replaces."""
    import random

    from limits import parse_many
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    from reelgate.limits import LocalMovingWindow

    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    storage = MemoryStorage()
    theirs, ours = MovingWindowRateLimiter(storage), LocalMovingWindow()
    items = parse_many("5/second;12/10 seconds")
    rng = random.Random(7)
    denied = 0
    try:
        for _ in range(3000):
            # never exactly one window apart: at that instant limits counts an entry
            # when it hits and not when it reports stats; we count it both times
            clock[0] += rng.choice((0.0, 0.001, 0.05, 0.3, 1.0, 4.0)) + rng.random() * 1e-4
            key, cost = rng.choice(("a", "b")), rng.choice((1, 1, 1, 2, 3))
            for item in items:
                expected = await theirs.hit(item, key, cost=cost)
                assert await ours.hit(item, key, cost) == expected
                denied += not expected
                assert await ours.get_window_stats(item, key) == (
                    await theirs.get_window_stats(item, key)
                )
    finally:
        if storage.timer is not None:
            storage.timer.cancel()
            await asyncio.gather(storage.timer, return_exceptions=True)
    assert denied > 100  # the sequence did reach the limits


async def test_the_local_window_forgets_keys_gone_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    from limits import parse_many

    from reelgate.limits import LocalMovingWindow

    clock = [1_700_000_000.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    window = LocalMovingWindow()
    (item,) = parse_many("3/second")
    for n in range(LocalMovingWindow._SWEEP_EVERY):
        await window.hit(item, f"key_{n}")
        clock[0] += 0.001
    clock[0] += 2
    for _ in range(LocalMovingWindow._SWEEP_EVERY):
        await window.hit(item, "fresh")  # denied after 3, but each one touches a window
    assert [key for key, _, _ in window._windows] == ["fresh"]
