"""A read shared by several waiters (``store.recent.Recent.shared``, the API-key and
account-flag lookups) that meets a database outage answers every waiter 503, never 500:
seen in the PostgreSQL outage test, where waiters after the first got the driver's
``ConnectionRefusedError`` without the traceback that marks it as the driver's."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from reelgate.errors import DatabaseUnavailable
from reelgate.store.db import is_unavailable
from reelgate.store.recent import Recent
from tests.conftest import free_port


async def test_every_waiter_of_a_refused_read_gets_the_outage() -> None:
    port = free_port()  # nothing listens there: connecting is refused

    async def read() -> int:
        await asyncio.sleep(0.05)  # every waiter is in before the read fails
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user="x", timeout=5)
        await conn.close()
        return 1

    recent: Recent[str, int] = Recent()
    results = await asyncio.gather(
        *(recent.shared("key", read) for _ in range(8)), return_exceptions=True
    )
    assert all(isinstance(r, DatabaseUnavailable) for r in results), results
    assert all(is_unavailable(r.__cause__) or r.__cause__ is not None for r in results)
    assert {r.http_status for r in results} == {503}  # type: ignore[union-attr]


async def test_a_bug_in_a_shared_read_stays_a_bug() -> None:
    async def read() -> int:
        raise KeyError("not an outage")

    recent: Recent[str, int] = Recent()
    with pytest.raises(KeyError):
        await recent.shared("key", read)
