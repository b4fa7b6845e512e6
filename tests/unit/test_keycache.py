"""The per-process memory of valid API keys (accounts.keycache)."""

from __future__ import annotations

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
