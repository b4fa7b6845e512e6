"""Cooldowns shared by every worker: set on a quota answer, read before a submit; and
the models a provider said it no longer serves (``Unavailable``), marked for longer."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.catalog.lifecycle import Unavailable
from reelgate.store.db import reading
from reelgate.store.jobs import now_ms
from reelgate.store.schema import provider_cooldowns, unavailable_models

__all__ = [
    "Unavailable",
    "clear_unavailable",
    "list_cooling",
    "list_unavailable",
    "mark_unavailable",
    "start_cooldown",
]


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


async def list_cooling(engine: AsyncEngine, now: int) -> dict[str, int]:
    """Every deployment cooling down at ``now``, with when its cooldown ends."""
    t = provider_cooldowns
    async with reading(engine) as conn:
        rows = await conn.execute(sa.select(t.c.deployment, t.c.until_at).where(t.c.until_at > now))
        return {str(d): int(u) for d, u in rows}


async def mark_unavailable(engine: AsyncEngine, record: Unavailable) -> None:
    """Mark (or mark again: the latest answer wins) a deployment's model unavailable."""
    t = unavailable_models
    values = {
        "deployment": record.deployment,
        "model": record.model,
        "reason": record.reason[:500],
        "marked_at": record.marked_at,
        "until_at": record.until,
    }
    async with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.deployment],
            set_={k: stmt.excluded[k] for k in values if k != "deployment"},
        )
        await conn.execute(stmt)


async def list_unavailable(engine: AsyncEngine, now: int) -> list[Unavailable]:
    """The marks still in force at ``now``, by deployment."""
    t = unavailable_models
    async with reading(engine) as conn:
        rows = (
            await conn.execute(sa.select(t).where(t.c.until_at > now).order_by(t.c.deployment))
        ).mappings()
        return [
            Unavailable(r["deployment"], r["model"], r["reason"], r["marked_at"], r["until_at"])
            for r in rows
        ]


async def clear_unavailable(engine: AsyncEngine, deployment: str) -> bool:
    """Lift a mark (an operator saw the model served again); False: there was none."""
    t = unavailable_models
    async with engine.begin() as conn:
        result = await conn.execute(t.delete().where(t.c.deployment == deployment))
    return result.rowcount == 1
