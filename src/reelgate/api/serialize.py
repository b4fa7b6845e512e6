"""Job rows to the wire: the native job object (an OpenAI Videos superset)."""

from __future__ import annotations

from typing import Any

from reelgate.billing import format_credits
from reelgate.runtime import Runtime
from reelgate.storage.signing import signed_query
from reelgate.store.jobs import Job

__all__ = ["STREAM_KEY", "job_to_wire", "public_status", "result_url", "stream_url"]


def public_status(job: Job) -> str:
    if job.state == "queued":
        return "queued"
    if job.state == "mirroring" and job.completed_at is not None:
        return "completed"  # a retried mirror of a finished video
    if job.state in ("submitting", "running", "mirroring"):
        return "in_progress"
    return job.state


FINAL = ("completed", "failed", "canceled")
_STAGES = {"submitting": "submitting", "running": "rendering", "mirroring": "storing"}


def stage(job: Job) -> str | None:
    """What an in-progress job is doing (the status alone says only "in_progress"):
    submitting upstream, rendering there, or storing the result."""
    return _STAGES.get(job.state) if public_status(job) == "in_progress" else None


def _cost(millicredits: int | None) -> dict[str, Any] | None:
    if millicredits is None:
        return None
    return {"credits": format_credits(millicredits), "millicredits": millicredits}


def _seconds(ms: int | None) -> int | None:
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
    r = job.result or {}
    if public_status(job) != "completed" or not r:
        return None
    if r.get("mirror_status") == "stored" and r.get("key"):
        return await rt.storage.signed_url(r["key"], rt.settings.signed_url_ttl_seconds)
    return stream_url(rt, job.id)


async def _result(rt: Runtime, job: Job) -> dict[str, Any] | None:
    r = job.result
    if not r or public_status(job) != "completed":
        return None
    ttl = rt.settings.signed_url_ttl_seconds
    url = await result_url(rt, job)
    stored = r.get("mirror_status") == "stored"
    out = {
        "url": url,
        "mirror_status": r.get("mirror_status"),
        "duration_seconds": r.get("duration_seconds") or r.get("measured_duration_seconds"),
        "measured_duration_seconds": r.get("measured_duration_seconds"),
        "width": r.get("width"),
        "height": r.get("height"),
        "bytes": r.get("bytes"),
        "content_type": r.get("content_type"),
        "sha256": r.get("sha256"),
        "has_audio": r.get("has_audio"),
        "url_expires_in": ttl,
        "upstream_url_expires_at": None if stored else _seconds(r.get("upstream_expires_at")),
    }
    if r.get("mirror_status") == "failed":
        out["mirror_error"] = r.get("mirror_error")
        out["mirror_retry_at"] = _seconds(r.get("mirror_retry_at"))
    return out


def _attempts(job: Job) -> list[dict[str, Any]]:
    return [
        {
            "model": a.get("model"),
            "upstream_id": a.get("upstream_id"),
            "outcome": a.get("outcome"),
            "error": a.get("error"),
            "started_at": _seconds(a.get("started_at")),
            "ended_at": _seconds(a.get("ended_at")),
        }
        for a in job.attempts
    ]


async def job_to_wire(rt: Runtime, job: Job) -> dict[str, Any]:
    p = job.params
    status = public_status(job)
    params = {
        "duration_seconds": p["duration_seconds"],
        "resolution": p["resolution"],
        "aspect_ratio": p["aspect_ratio"],
        "negative_prompt": p.get("negative_prompt"),
        "seed": p.get("seed"),
        "image_url": p.get("image_url"),
        "image": bool(p.get("image_key")),
    }
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": status,
        "stage": stage(job),
        "progress": job.progress,
        "prompt": job.prompt,
        "created_at": _seconds(job.created_at),
        "completed_at": _seconds(job.completed_at) if status in FINAL else None,
        "expires_at": None,
        "remixed_from_video_id": None,
        "seconds": str(p["duration_seconds"]),
        "size": f"{p['width']}x{p['height']}",
        "params": params,
        "fallback": job.chain[1:],
        "delivered_by": job.delivered_by if status == "completed" else None,
        "result": await _result(rt, job),
        "error": job.error if status == "failed" else None,
        "attempts": _attempts(job),
        "units_consumed": job.units_consumed if status in FINAL else None,
        "cost": _cost(job.cost) if status in FINAL else None,
        "metadata": job.metadata,
    }
