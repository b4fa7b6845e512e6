"""Ambiguous upstream creates: the SQL behind the operators' list (``ambiguous_creates``).

A row is written in the same transaction as the engine's decision about the
job, so the list never misses a create the engine gave up on, and never shows
one it settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.ids import new_id
from reelgate.store.schema import ambiguous_creates as _t

__all__ = ["AmbiguousCreate", "list_ambiguous", "record_ambiguous", "resolve_ambiguous"]


@dataclass(frozen=True)
class AmbiguousCreate:
    id: str
    job_id: str
    attempt_no: int
    model: str
    provider: str
    upstream_id: str | None
    sent_at: int | None
    outcome: str
    note: str
    created_at: int
    resolved_at: int | None
    resolution: str | None

    def to_wire(self) -> dict[str, Any]:
        def seconds(ms: int | None) -> int | None:
            return None if ms is None else ms // 1000

        return {
            "object": "ambiguous_create",
            "id": self.id,
            "job_id": self.job_id,
            "attempt": self.attempt_no,
            "model": self.model,
            "provider": self.provider,
            "upstream_id": self.upstream_id,
            "sent_at": seconds(self.sent_at),
            "outcome": self.outcome,
            "note": self.note,
            "created_at": seconds(self.created_at),
            "resolved_at": seconds(self.resolved_at),
            "resolution": self.resolution,
        }


async def record_ambiguous(
    conn: AsyncConnection,
    *,
    job_id: str,
    attempt_no: int,
    model: str,
    provider: str,
    upstream_id: str | None,
    sent_at: int | None,
    outcome: str,
    note: str,
    now: int,
) -> str:
    row_id = new_id("amb")
    await conn.execute(
        _t.insert().values(
            id=row_id,
            job_id=job_id,
            attempt_no=attempt_no,
            model=model,
            provider=provider,
            upstream_id=upstream_id,
            sent_at=sent_at,
            outcome=outcome,
            note=note[:500],
            created_at=now,
        )
    )
    return row_id


async def list_ambiguous(
    conn: AsyncConnection, *, include_resolved: bool = False, limit: int = 100
) -> list[AmbiguousCreate]:
    """Newest first; by default only those an operator has not resolved yet."""
    query = sa.select(_t).order_by(_t.c.id.desc()).limit(limit)
    if not include_resolved:
        query = query.where(_t.c.resolved_at.is_(None))
    rows = (await conn.execute(query)).mappings().all()
    return [AmbiguousCreate(**dict(r)) for r in rows]


async def resolve_ambiguous(conn: AsyncConnection, row_id: str, resolution: str, now: int) -> bool:
    result = await conn.execute(
        _t.update()
        .where(_t.c.id == row_id, _t.c.resolved_at.is_(None))
        .values(resolved_at=now, resolution=resolution[:500])
    )
    return result.rowcount == 1
