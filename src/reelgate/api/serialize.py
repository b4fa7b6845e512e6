"""Job rows to the wire: the native job object (an OpenAI Videos superset)."""

from __future__ import annotations

from typing import Any

from reelgate.billing import format_credits
from reelgate.job import Job, JobError, MirrorStatus, PublicStatus
from reelgate.runtime import Runtime
from reelgate.storage.signing import signed_query

__all__ = [
    "STREAM_KEY",
    "cost_to_wire",
    "error_to_wire",
    "job_to_wire",
    "result_url",
    "seconds_of",
    "stream_url",
]


def cost_to_wire(rt: Runtime, millicredits: int | None) -> dict[str, Any] | None:
    if millicredits is None:
        return None
    return {
        "credits": format_credits(millicredits),
        "millicredits": millicredits,
        "money": rt.settings.credit().wire(millicredits),
    }


def seconds_of(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


STREAM_KEY = "stream:{job_id}"
"""What a signed link to a job's content route signs (``GET /v1/videos/{id}/stream``)."""


def stream_url(rt: Runtime, job_id: str) -> str:
    """reelgate's own link to a delivered video whose copy failed: it streams from the
    upstream with the provider's credentials server-side, so it never needs (or shows)
    the provider's key. Signed and expiring like a stored file's link."""
    query = signed_query(
        STREAM_KEY.format(job_id=job_id), rt.settings.signed_url_ttl_seconds, rt.signing_secret
    )
    return f"{rt.public_url}/v1/videos/{job_id}/stream?{query}"


async def result_url(rt: Runtime, job: Job) -> str | None:
    """Where a completed job's video is: the stored copy, else reelgate's content route."""
    r = job.result
    if job.status is not PublicStatus.COMPLETED or r is None or job.expired_at is not None:
        return None
    if r.mirror_status is MirrorStatus.STORED and r.key:
        return await rt.storage.signed_url(r.key, rt.settings.signed_url_ttl_seconds)
    return stream_url(rt, job.id)


async def _result(rt: Runtime, job: Job) -> dict[str, Any] | None:
    r = job.result
    if r is None or job.status is not PublicStatus.COMPLETED:
        return None
    if job.expired_at is not None:  # deleted by retention: what it was, not where
        return {
            "url": None,
            "expired": True,
            "expired_at": seconds_of(job.expired_at),
            "duration_seconds": r.duration_seconds or r.measured_duration_seconds,
            "width": r.width,
            "height": r.height,
            "bytes": r.bytes,
            "sha256": r.sha256,
        }
    stored = r.mirror_status is MirrorStatus.STORED
    # an extension's copy is the whole video; the upstream's figure was the new part's
    whole = job.params.edit == "extend" and r.measured_duration_seconds is not None
    out: dict[str, Any] = {
        "url": await result_url(rt, job),
        "mirror_status": r.mirror_status.value,
        "duration_seconds": r.measured_duration_seconds
        if whole
        else r.duration_seconds or r.measured_duration_seconds,
        "measured_duration_seconds": r.measured_duration_seconds,
        "width": r.width,
        "height": r.height,
        "bytes": r.bytes,
        "content_type": r.content_type,
        "sha256": r.sha256,
        "has_audio": r.has_audio,
        "url_expires_in": rt.settings.signed_url_ttl_seconds,
        "upstream_url_expires_at": None if stored else seconds_of(r.upstream_expires_at),
    }
    ttl = rt.settings.signed_url_ttl_seconds
    # the poster and sprite sheet stored with the copy (OpenAI's thumbnail/spritesheet)
    out["thumbnail_url"] = await rt.storage.signed_url(r.poster_key, ttl) if r.poster_key else None
    out["spritesheet_url"] = (
        await rt.storage.signed_url(r.sprite_key, ttl) if r.sprite_key else None
    )
    out["spritesheet"] = r.sprite_layout
    if r.mirror_status is MirrorStatus.FAILED:
        out["mirror_error"] = r.mirror_error
        out["mirror_retry_at"] = seconds_of(r.mirror_retry_at)
    return out


def error_to_wire(error: JobError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    out: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.error_class is not None:
        out["class"] = error.error_class
    if error.upstream_status is not None:
        out["upstream_status"] = error.upstream_status
    return out


def _attempts(job: Job) -> list[dict[str, Any]]:
    return [
        {
            "model": a.model,
            "provider": a.provider,
            "route": a.route,
            "upstream_id": a.upstream_id,
            "outcome": a.outcome.value,
            "error": error_to_wire(a.error),
            "started_at": seconds_of(a.started_at),
            "ended_at": seconds_of(a.ended_at),
        }
        for a in job.attempts
    ]


def _expires_at(rt: Runtime, job: Job) -> int | None:
    """When the video goes (OpenAI's ``expires_at``): delivery plus the retention period;
    None while not delivered, when pinned, or with retention off."""
    if job.expired_at is not None:
        return seconds_of(job.expired_at)
    keep_days = rt.settings.retention_days
    if job.completed_at is None or job.pinned_at is not None or keep_days <= 0:
        return None
    return seconds_of(job.completed_at + int(keep_days * 86_400_000))


async def job_to_wire(rt: Runtime, job: Job) -> dict[str, Any]:
    p = job.params
    status = job.status
    final = status.is_final
    stage = job.stage
    params = {
        "duration_seconds": p.duration_seconds,
        "resolution": p.resolution,
        "aspect_ratio": p.aspect_ratio,
        "negative_prompt": p.negative_prompt,
        "seed": p.seed,
        "image_url": p.image_url,
        "image": bool(p.image_key),
        "audio": p.audio,
        "provider_params": dict(p.provider_params) if p.provider_params else None,
    }
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": status.value,
        "stage": stage.value if stage is not None else None,
        "progress": job.progress,
        "prompt": job.prompt,
        "created_at": seconds_of(job.created_at),
        "completed_at": seconds_of(job.completed_at) if final else None,
        "expires_at": _expires_at(rt, job),
        "pinned": job.pinned_at is not None,
        "remixed_from_video_id": p.source_video_id if p.edit == "remix" else None,
        "extended_from_video_id": p.source_video_id if p.edit == "extend" else None,
        "seconds": str(p.duration_seconds),
        "size": p.size,
        "params": params,
        "fallback": list(job.chain[1:]),
        "delivered_by": job.delivered_by if status is PublicStatus.COMPLETED else None,
        "result": await _result(rt, job),
        "error": error_to_wire(job.error) if status is PublicStatus.FAILED else None,
        "attempts": _attempts(job),
        "units_consumed": job.units_consumed if final else None,
        "cost": cost_to_wire(rt, job.cost) if final else None,
        "metadata": dict(job.metadata),
        "webhook_url": job.webhook_url,
    }
