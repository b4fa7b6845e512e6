"""``GET /v1/videos/{id}/events``: the job's events as Server-Sent Events.

Replays everything after ``Last-Event-ID`` from the stored events, then
follows new ones as they are written (woken by the in-process hub, which on
PostgreSQL is fed by ``LISTEN reelgate_events`` so events written by a worker
in any process arrive), with a short re-read as a safety net and keep-alive
comments. The stream ends after the job's final event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from reelgate.api.auth import require_read, runtime
from reelgate.api.openapi import errors
from reelgate.api.serialize import job_to_wire
from reelgate.engine.events import FINAL_TYPES
from reelgate.errors import NotFound, ValidationFailed
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.db import is_unavailable
from reelgate.store.events import StoredEvent

__all__ = ["KEEPALIVE_SECONDS", "router"]

router = APIRouter(prefix="/v1/videos", tags=["videos"])

KEEPALIVE_SECONDS = 15.0
_RECHECK_SECONDS = 1.0
"""Re-read even without a wake-up: covers SQLite workers in other processes."""
_OUTAGE_WAIT_SECONDS = 2.0
_EVENT_DATA = {
    "type": "object",
    "description": "Each event's data: the change, and the job as GET /v1/videos/{id} shows it.",
    "required": ["seq", "type", "status", "progress", "created_at", "job"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1},
        "type": {"type": "string"},
        "status": {"type": "string"},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "created_at": {"type": "integer"},
        "job": {"type": ["object", "null"]},
    },
}
_EVENT_SCHEMA = {
    "type": "object",
    "description": "One event of the stream (as OpenAPI 3.2's itemSchema reads it).",
    "required": ["data", "event", "id"],
    "properties": {
        "event": {"type": "string", "pattern": "^video\\."},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _EVENT_DATA,
        },
    },
}


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            "Last-Event-ID must be the integer id of an event.", param="Last-Event-ID"
        ) from None
    return max(0, value)


async def _read(
    rt: Runtime, job_id: str, account_id: str, last: int
) -> tuple[list[StoredEvent], dict[str, Any] | None]:
    async with rt.store.reading() as tx:
        rows = await tx.events_after(job_id, last)
        job = await tx.get_job(job_id, account_id) if rows else None
    return rows, (await job_to_wire(rt, job) if job is not None else None)


async def _stream(
    rt: Runtime, request: Request, job_id: str, account_id: str, last: int
) -> AsyncIterator[str]:
    waiter = rt.events.subscribe(job_id)
    quiet = 0.0
    try:
        yield "retry: 2000\n\n"
        while True:
            waiter.clear()
            # Shielded: a client that disconnects cancels this generator, and a read
            # cancelled inside its transaction would leave the SQLite connection (and
            # its lock) to the garbage collector. The read always finishes cleanly.
            try:
                rows, wire = await asyncio.shield(_read(rt, job_id, account_id, last))
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # Keep the stream open through a database outage and pick up where
                # it left off; a comment line tells the client why it is quiet.
                yield ": database unavailable; waiting\n\n"
                await asyncio.sleep(_OUTAGE_WAIT_SECONDS)
                continue
            for row in rows:
                event = row.event
                data = {
                    "seq": row.seq,
                    "type": event.type,
                    "status": event.status.value,
                    "progress": event.progress,
                    "created_at": row.created_at // 1000,
                    "job": wire,
                }
                yield f"id: {row.seq}\nevent: {event.type}\ndata: {json.dumps(data)}\n\n"
                last = row.seq
                if event.type in FINAL_TYPES:
                    return
            if rows:
                quiet = 0.0
            if await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(waiter.wait(), timeout=_RECHECK_SECONDS)
            except TimeoutError:
                quiet += _RECHECK_SECONDS
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
    finally:
        rt.events.unsubscribe(job_id, waiter)


@router.get(
    "/{video_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
            "description": "Server-Sent Events: the job's events, then the stream closes.",
        },
        **errors(404),
    },
)
async def video_events(
    video_id: str,
    request: Request,
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> StreamingResponse:
    last = _last_event_id(request)
    async with rt.store.reading() as tx:
        if await tx.get_job(video_id, key.account_id) is None:
            raise NotFound(f"No video job {video_id!r}.", param="id")
    return StreamingResponse(
        _stream(rt, request, video_id, key.account_id, last),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
