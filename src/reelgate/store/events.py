"""Job events: the rows behind the SSE stream, written with the change they report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.job import Event, PublicStatus
from reelgate.store.schema import job_events
from reelgate.store.wakeup import EVENTS_CHANNEL

__all__ = ["StoredEvent", "event_row", "events_after", "insert_event"]


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: Event
    created_at: int


_INSERT_EVENT = job_events.insert()
"""Parameters go with the execute: the compiled statement is reused (no per-call binds)."""


def event_row(job_id: str, seq: int, event: Event, now: int) -> dict[str, Any]:
    """One ``job_events`` row, every column."""
    return {
        "job_id": job_id,
        "seq": seq,
        "type": event.type,
        "status": event.status.value,
        "progress": event.progress,
        "created_at": now,
    }


async def insert_event(
    conn: AsyncConnection, job_id: str, seq: int, event: Event, now: int
) -> None:
    """Store the event; on PostgreSQL, tell every process's SSE hub when it commits."""
    await conn.execute(_INSERT_EVENT, event_row(job_id, seq, event, now))
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(EVENTS_CHANNEL, job_id)))


async def events_after(conn: AsyncConnection, job_id: str, seq: int) -> list[StoredEvent]:
    """A job's events after ``seq``, oldest first."""
    rows = (
        await conn.execute(
            sa.select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.seq > seq)
            .order_by(job_events.c.seq)
        )
    ).all()
    return [
        StoredEvent(
            seq=int(r.seq),
            event=Event(type=r.type, status=PublicStatus(r.status), progress=int(r.progress)),
            created_at=int(r.created_at),
        )
        for r in rows
    ]
