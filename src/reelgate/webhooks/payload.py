"""The body of a delivery: an event in OpenAI's webhook shape (``id``, ``object:
"event"``, ``type``, ``created_at`` in seconds, ``data``) whose ``data`` is the job as
the client's own API shows it: the native video object (an OpenAI Videos superset,
so ``data.id`` is where OpenAI puts it), or the ``/v2/jobs`` document for a job made
through the media-video-from-text service. ``data`` is the job when the event is fanned
out, a moment after the change; a retry sends the same bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reelgate.api.routes_media_service import SERVICE, job_document
from reelgate.api.serialize import job_to_wire
from reelgate.job import Job
from reelgate.runtime import Runtime
from reelgate.store.budgets import budget_wire
from reelgate.webhooks.store import event_id

__all__ = ["account_event_body", "account_event_id", "event_body"]


async def event_body(rt: Runtime, job: Job, seq: int, event_type: str, created_ms: int) -> str:
    data = await job_document(rt, job) if job.source == SERVICE else await job_to_wire(rt, job)
    event = {
        "id": event_id(job.id, seq),
        "object": "event",
        "type": event_type,
        "created_at": created_ms // 1000,
        "data": data,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def account_event_id(account_id: str, event_type: str, data: dict[str, Any]) -> str:
    """A budget event's id: the same however often it is fanned out, another for each
    crossing (a raised cap re-arms a threshold: the cap and the amounts differ then)."""
    amounts = f"{data['cap']}:{data['spent']}:{data['held']}:{data['reason']}"
    name = f"{account_id}:{event_type}:{data['key_id']}:{data['period_key']}:{amounts}"
    return "evt_" + hashlib.sha256(name.encode()).hexdigest()[:32]


def account_event_body(
    rt: Runtime, account_id: str, job_id: str, event_type: str, created_ms: int, payload: str
) -> tuple[str, str]:
    """(event id, body) of an account's event: ``data`` is the budget and its numbers
    when the threshold was reached (``store.budgets``), and the job whose submit did."""
    data = json.loads(payload)
    eid = account_event_id(account_id, event_type, data)
    event = {
        "id": eid,
        "object": "event",
        "type": event_type,
        "created_at": created_ms // 1000,
        # the job whose submit reached the threshold (none for a refusal: never written)
        "data": {**budget_wire(account_id, data, rt.settings.credit()), "job_id": job_id or None},
    }
    return eid, json.dumps(event, separators=(",", ":"), ensure_ascii=False)
