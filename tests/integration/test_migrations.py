"""Alembic builds exactly the schema the code declares, and tears it down again."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reelgate.store import migrate
from reelgate.store.db import create_engine
from reelgate.store.schema import metadata


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names)


async def _diff(url: str) -> list[object]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await engine.dispose()


async def test_upgrade_matches_the_declared_schema_and_downgrade_removes_it(db_url: str) -> None:
    # db_url is already at head (fixtures migrate it)
    assert await _diff(db_url) == []
    assert {"accounts", "api_keys", "jobs"} <= await _tables(db_url)
    await migrate.upgrade_async(db_url)  # idempotent at head
    await asyncio.to_thread(migrate.downgrade, db_url)
    assert await _tables(db_url) <= {"alembic_version"}
    await migrate.upgrade_async(db_url)
    assert await _diff(db_url) == []
