"""The body of a delivery: an event in OpenAI's webhook shape (``id``, ``object:
"event"``, ``type``, ``created_at`` in seconds, ``data``) whose ``data`` is the job as
the client's own API shows it: the native video object (an OpenAI Videos superset,
so ``data.id`` is where OpenAI puts it), or the ``/v2/jobs`` document for a job made
through the media-video-from-text service. ``data`` is the job when the event is fanned
out, a moment after the change; a retry sends the same bytes."""

from __future__ import annotations

import json

from reelgate.api.routes_media_service import SERVICE, job_document
from reelgate.api.serialize import job_to_wire
from reelgate.job import Job
from reelgate.runtime import Runtime
from reelgate.webhooks.store import event_id

__all__ = ["event_body"]


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
