"""PostgreSQL's one-call writes run on their own asyncpg connections (``store.db``'s
``_PgOneCalls``), beside SQLAlchemy's pool: reused while healthy, dropped when a call
meets an outage or is cancelled mid-statement, closed with the engine, and decoding
JSON as SQLAlchemy's dialect does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.store.db import _one_calls, create_engine, is_unavailable, one_call


def _never_sqlite(_conn: Any) -> Any:
    raise AssertionError("a PostgreSQL engine never runs the SQLite side")


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(pg_url)
    yield made
    await made.dispose()


async def _pid(engine: Any) -> int:
    async def fetch(conn: asyncpg.Connection) -> int:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
        return pid

    return await one_call(engine, _never_sqlite, fetch)


async def _sleep(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_sleep(5)")


async def _kill(url: str, pid: int) -> None:
    admin = create_engine(url)
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


async def _seen_closed(engine: AsyncEngine) -> None:
    """Wait until asyncpg has read the server's goodbye on the idle connection (on a busy
    machine it comes a few milliseconds after pg_terminate_backend returns; before it,
    the connection still looks open, as any client's would)."""
    idle = _one_calls(engine)._idle
    for _ in range(250):
        if all(conn.is_closed() for conn in idle):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("asyncpg never saw the terminated connection close")


async def test_calls_reuse_one_connection_and_decode_json_as_sqlalchemy_does(
    engine: AsyncEngine,
) -> None:
    assert len({await _pid(engine) for _ in range(5)}) == 1

    async def round_trip(conn: asyncpg.Connection) -> Any:
        return await conn.fetchrow(
            "SELECT $1::jsonb AS b, $2::json AS j", '{"a": [1, "x"]}', '{"n": null}'
        )

    row = await one_call(engine, _never_sqlite, round_trip)
    async with engine.connect() as conn:
        through_sqlalchemy = (
            await conn.execute(sa.text("""SELECT '{"a": [1, "x"]}'::jsonb, '{"n": null}'::json"""))
        ).one()
    assert (row["b"], row["j"]) == tuple(through_sqlalchemy) == ({"a": [1, "x"]}, {"n": None})


async def test_an_outage_fails_the_call_in_flight_and_the_next_gets_a_new_connection(
    engine: AsyncEngine, pg_url: str
) -> None:
    before = await _pid(engine)
    await _kill(pg_url, before)  # the server ends an idle session, as a restart would
    await _seen_closed(engine)
    after_idle_kill = await _pid(engine)  # asyncpg saw it close: not handed out
    assert after_idle_kill != before
    call = asyncio.create_task(one_call(engine, _never_sqlite, _sleep))
    await asyncio.sleep(0.3)
    await _kill(pg_url, after_idle_kill)  # ... and one in the middle of a call
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)) as failed:
        await call
    assert is_unavailable(failed.value)
    assert await _pid(engine) not in (before, after_idle_kill)


async def test_a_call_cancelled_mid_statement_does_not_hand_its_connection_on(
    engine: AsyncEngine,
) -> None:
    first = await _pid(engine)
    call = asyncio.create_task(one_call(engine, _never_sqlite, _sleep))
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await _pid(engine) != first  # the busy one was closed, not reused


async def test_disposing_the_engine_closes_its_one_call_connections(pg_url: str) -> None:
    engine = create_engine(pg_url)
    pid = await _pid(engine)
    await engine.dispose()
    admin = create_engine(pg_url)
    try:
        for _ in range(50):
            async with admin.connect() as conn:
                alive = (
                    await conn.execute(
                        sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": pid},
                    )
                ).scalar_one()
            if not alive:
                break
            await asyncio.sleep(0.05)
        assert alive == 0
    finally:
        await admin.dispose()
