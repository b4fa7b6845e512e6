"""The per-process memory of valid API keys (accounts.keycache)."""

from __future__ import annotations

import asyncio

from reelgate.accounts.keycache import KeyCache
from reelgate.store.accounts import KeyInfo

NOW_MS = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_a_valid_key_is_read_once_a_second_and_invalid_ones_every_time() -> None:
    clock = Clock()
    cache = KeyCache(ttl=1.0, clock=clock)
    reads: list[str] = []
    table = {"rg_good": KeyInfo("key_1", "acct_1", ("jobs:read",))}

    async def read(key: str, now: int) -> KeyInfo | None:
        reads.append(key)
        return table.get(key)

    for _ in range(3):
        assert await cache.lookup("rg_good", NOW_MS, read) == table["rg_good"]
        assert await cache.lookup("rg_bad", NOW_MS, read) is None
    assert reads == ["rg_good", "rg_bad", "rg_bad", "rg_bad"]
    del table["rg_good"]  # revoked elsewhere
    clock.t += 0.99
    assert await cache.lookup("rg_good", NOW_MS, read) is not None  # within the second
    clock.t += 0.02
    assert await cache.lookup("rg_good", NOW_MS, read) is None  # read again: gone
    assert await cache.lookup("rg_good", NOW_MS, read) is None


async def test_an_expired_key_is_refused_from_memory_and_forget_all_rereads() -> None:
    clock = Clock()
    cache = KeyCache(ttl=1.0, clock=clock)
    reads = 0
    info = KeyInfo("key_1", "acct_1", ("jobs:read",), expires_at=NOW_MS + 10)

    async def read(key: str, now: int) -> KeyInfo | None:
        nonlocal reads
        reads += 1
        return info if now < NOW_MS + 10 else None

    assert await cache.lookup("rg_k", NOW_MS, read) == info
    assert await cache.lookup("rg_k", NOW_MS + 10, read) is None  # expired: not from memory
    assert await cache.lookup("rg_k", NOW_MS, read) == info
    cache.forget_all()
    assert await cache.lookup("rg_k", NOW_MS, read) == info
    assert reads == 4


class GatedReads:
    """A key read that waits for ``gate`` and counts its calls; the first may fail."""

    def __init__(self, fail_first: bool = False) -> None:
        self.gate = asyncio.Event()
        self.count = 0
        self.fail_first = fail_first
        self.info = KeyInfo("key_1", "acct_1", ("jobs:read",))

    async def __call__(self, key: str, now: int) -> KeyInfo | None:
        self.count += 1
        await self.gate.wait()
        if self.fail_first and self.count == 1:
            raise ConnectionError("database went away")
        return self.info


async def test_overlapping_lookups_of_a_key_share_one_read() -> None:
    """16 requests that find the key expired at once send one read, not 16."""
    cache, read = KeyCache(ttl=1.0, clock=Clock()), GatedReads()
    lookups = [asyncio.create_task(cache.lookup("rg_k", NOW_MS, read)) for _ in range(16)]
    await asyncio.sleep(0)
    lookups[0].cancel()  # the caller that started the read gives up: the others still get it
    read.gate.set()
    answers = await asyncio.gather(*lookups, return_exceptions=True)
    assert isinstance(answers[0], asyncio.CancelledError)
    assert answers[1:] == [read.info] * 15
    assert read.count == 1
    assert await cache.lookup("rg_k", NOW_MS, read) == read.info and read.count == 1


async def test_a_failed_shared_read_fails_every_waiter_and_is_not_remembered() -> None:
    cache, read = KeyCache(ttl=1.0, clock=Clock()), GatedReads(fail_first=True)
    lookups = [asyncio.create_task(cache.lookup("rg_k", NOW_MS, read)) for _ in range(4)]
    await asyncio.sleep(0)
    read.gate.set()
    answers = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(a, ConnectionError) for a in answers) and read.count == 1
    assert await cache.lookup("rg_k", NOW_MS, read) == read.info and read.count == 2


async def test_forget_all_during_a_read_makes_the_next_lookup_read_again() -> None:
    cache, read = KeyCache(ttl=1.0, clock=Clock()), GatedReads()
    first = asyncio.create_task(cache.lookup("rg_k", NOW_MS, read))
    await asyncio.sleep(0)
    cache.forget_all()  # e.g. this process revoked a key: a read begun before may be stale
    second = asyncio.create_task(cache.lookup("rg_k", NOW_MS, read))
    await asyncio.sleep(0)
    read.gate.set()
    await asyncio.gather(first, second)
    assert read.count == 2
