"""Job events: derive them from a job's changes, and fan them out.

An event is written (``Tx.record_event``) in the same transaction as the change
it reports, so a client never sees an event for a change that rolled back, nor
misses one that committed. Fan-out: an in-process hub wakes the SSE streams of
this process; on PostgreSQL ``pg_notify('reelgate_events', job_id)`` reaches the
hubs of every other process (``store.events``, ``store.wakeup``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from reelgate.job import Event, Job

__all__ = ["FINAL_TYPES", "Event", "EventHub", "event_for"]

FINAL_TYPES = frozenset({"video.completed", "video.failed", "video.canceled"})


def event_for(before: Job, after: Job) -> Event | None:
    """The event a change makes, if any: a public status change, else a progress step."""
    old, new = before.status, after.status
    if new is not old:
        return Event(type=f"video.{new}", status=new, progress=after.progress)
    if after.progress != before.progress:
        return Event(type="video.progress", status=new, progress=after.progress)
    return None


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
