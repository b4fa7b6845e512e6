"""Job events: derive them from a job's changes, store them, and fan them out.

An event is written in the same transaction as the change it reports (so a
client never sees an event for a change that rolled back, nor misses one that
committed). Fan-out: an in-process hub wakes the SSE streams of this process;
on PostgreSQL ``pg_notify('reelgate_events', job_id)`` reaches the hubs of
every other process (see ``engine.wakeup``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.engine.wakeup import EVENTS_CHANNEL
from reelgate.store.jobs import now_ms
from reelgate.store.schema import job_events

__all__ = ["EVENTS_CHANNEL", "FINAL_TYPES", "Event", "EventHub", "event_for", "record_event"]

FINAL_TYPES = frozenset({"video.completed", "video.failed", "video.canceled"})


def _public(state: str, completed_at: object) -> str:
    if state == "queued":
        return "queued"
    if state == "mirroring" and completed_at is not None:
        return "completed"
    if state in ("submitting", "running", "mirroring"):
        return "in_progress"
    return state


@dataclass(frozen=True)
class Event:
    type: str
    status: str
    progress: int


def event_for(
    before_state: str,
    before_progress: int,
    before_completed_at: object,
    values: Mapping[str, Any],
) -> Event | None:
    """The event a change makes, if any: a public status change, else a progress step."""
    state = values.get("state", before_state)
    completed_at = values.get("completed_at", before_completed_at)
    progress = int(values.get("progress", before_progress))
    old, new = _public(before_state, before_completed_at), _public(state, completed_at)
    if new != old:
        return Event(type=f"video.{new}", status=new, progress=progress)
    if progress != before_progress:
        return Event(type="video.progress", status=new, progress=progress)
    return None


async def record_event(conn: AsyncConnection, job_id: str, seq: int, event: Event) -> None:
    await conn.execute(
        job_events.insert().values(
            job_id=job_id,
            seq=seq,
            type=event.type,
            status=event.status,
            progress=event.progress,
            created_at=now_ms(),
        )
    )
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(EVENTS_CHANNEL, job_id)))


class EventHub:
    """Per-job wake-ups for the SSE streams of this process."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def notify(self, job_id: str) -> None:
        for waiter in self._waiters.get(job_id, ()):
            waiter.set()

    def subscribe(self, job_id: str) -> asyncio.Event:
        waiter = asyncio.Event()
        self._waiters[job_id].add(waiter)
        return waiter

    def unsubscribe(self, job_id: str, waiter: asyncio.Event) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[job_id]
