"""Cooldowns shared by every worker: set on a quota answer, read before a submit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.store.db import reading
from reelgate.store.jobs import now_ms
from reelgate.store.schema import provider_cooldowns

__all__ = ["cooling_until", "start_cooldown"]


async def start_cooldown(
    engine: AsyncEngine, deployment: str, until: int, reason: str, now: int | None = None
) -> None:
    """Cool ``deployment`` down until ``until`` (ms); a later end wins over an earlier one."""
    t = provider_cooldowns
    values = {
        "deployment": deployment,
        "until_at": until,
        "reason": reason[:500],
        "updated_at": now_ms() if now is None else now,
    }
    async with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.deployment],
            set_={
                "until_at": sa.func.max(stmt.excluded.until_at, t.c.until_at)
                if conn.dialect.name == "sqlite"
                else sa.func.greatest(stmt.excluded.until_at, t.c.until_at),
                "reason": stmt.excluded.reason,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        await conn.execute(stmt)


async def cooling_until(engine: AsyncEngine, deployment: str, now: int | None = None) -> int | None:
    """When the deployment's cooldown ends, or None if it is not cooling down."""
    now = now_ms() if now is None else now
    async with reading(engine) as conn:
        until = await conn.scalar(
            sa.select(provider_cooldowns.c.until_at).where(
                provider_cooldowns.c.deployment == deployment,
                provider_cooldowns.c.until_at > now,
            )
        )
    return int(until) if until is not None else None
