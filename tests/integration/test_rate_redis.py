"""Per-key rate limits shared through a real Redis by several API processes.

Needs REELGATE_TEST_REDIS_URL. Without it these tests skip on a laptop, but
under CI=true they fail instead: CI must never skip them. Each test counts
under its own key prefix and deletes what it created.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import coredis
import pytest

from reelgate.limits import RateLimiter, RateLimiterUnavailable


def _redis_url() -> str:
    url = os.environ.get("REELGATE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but REELGATE_TEST_REDIS_URL is unset: Redis tests must run")
        pytest.skip("REELGATE_TEST_REDIS_URL not set")
    return url


@pytest.fixture
def redis_url() -> str:
    return _redis_url()


@pytest.fixture
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"reelgate-test:{uuid.uuid4().hex[:12]}"
    yield prefix
    client: coredis.Redis[bytes] = coredis.Redis.from_url(redis_url)
    try:
        keys: list[str | bytes] = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(keys)
    finally:
        client.connection_pool.disconnect()


@pytest.fixture
async def api_process(
    redis_url: str, key_prefix: str
) -> AsyncIterator[Callable[[str], RateLimiter]]:
    """Make limiters as separate API processes would: each with its own Redis connections."""
    made: list[RateLimiter] = []

    def make(limits: str) -> RateLimiter:
        limiter = RateLimiter(limits, redis_url=redis_url, key_prefix=key_prefix)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


async def _keys(redis_url: str, prefix: str) -> list[bytes]:
    client: coredis.Redis[bytes] = coredis.Redis.from_url(redis_url)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}:*")]
    finally:
        client.connection_pool.disconnect()


async def test_two_api_processes_share_one_limit(
    api_process: Callable[[str], RateLimiter], redis_url: str, key_prefix: str
) -> None:
    first, second = api_process("4/minute"), api_process("4/minute")
    await first.check()
    await second.check()

    assert [(await first.hit("key_a")).allowed for _ in range(2)] == [True, True]
    assert [(await second.hit("key_a")).allowed for _ in range(2)] == [True, True]

    for limiter in (first, second):
        denied = await limiter.hit("key_a")
        assert not denied.allowed
        assert denied.limit == "4 per 1 minute"
        assert 58 <= denied.retry_after_seconds <= 60
    assert await _keys(redis_url, key_prefix), "counts must live under the configured prefix"


async def test_concurrent_hits_from_two_processes_never_exceed_the_limit(
    api_process: Callable[[str], RateLimiter],
) -> None:
    first, second = api_process("5/minute;50/second"), api_process("5/minute;50/second")
    decisions = await asyncio.gather(
        *(limiter.hit("key_a") for _ in range(10) for limiter in (first, second))
    )
    assert sum(d.allowed for d in decisions) == 5


async def test_keys_are_isolated_across_processes(
    api_process: Callable[[str], RateLimiter],
) -> None:
    first, second = api_process("2/minute"), api_process("2/minute")
    for _ in range(2):
        assert (await first.hit("key_a")).allowed
    assert not (await second.hit("key_a")).allowed
    other = await second.hit("key_b")
    assert other.allowed
    assert other.remaining == 1


async def test_shared_window_frees_up_after_it_passes(
    api_process: Callable[[str], RateLimiter],
) -> None:
    first, second = api_process("2/second"), api_process("2/second")
    assert (await first.hit("key_a")).allowed
    assert (await first.hit("key_a")).allowed
    denied = await second.hit("key_a")
    assert not denied.allowed
    assert denied.retry_after_seconds == 1
    await asyncio.sleep(1.1)
    assert (await second.hit("key_a")).allowed


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_redis_fails_startup_and_refuses_requests() -> None:
    port = _closed_port()
    limiter = RateLimiter.from_url(f"redis://:hunter2@127.0.0.1:{port}/0", "10/second")
    try:
        with pytest.raises(RateLimiterUnavailable) as startup:
            await limiter.check()
        assert startup.value.http_status == 503
        assert startup.value.code == "rate_limiter_unavailable"
        assert f"127.0.0.1:{port}" in startup.value.message
        assert "hunter2" not in startup.value.message
        assert "hunter2" not in str(startup.value.to_dict())

        # Never a silent allow: a request made while Redis is down is refused too.
        with pytest.raises(RateLimiterUnavailable):
            await limiter.hit("key_a")
    finally:
        await limiter.aclose()
