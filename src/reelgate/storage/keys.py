"""Where a job's objects live in storage: its delivered video, and the object a
provider writes when reelgate hands it an upload link (``providers.base.UPLOADED``)."""

from __future__ import annotations

from reelgate.job import Job, JobParams, JobResult

__all__ = [
    "is_source_copy",
    "preview_keys",
    "source_copy_key",
    "storage_key",
    "stored_keys",
    "upload_key",
]


def storage_key(job: Job) -> str:
    """The delivered video (reelgate's copy)."""
    return f"videos/{job.account_id}/{job.id}.mp4"


def preview_keys(job: Job) -> tuple[str, str]:
    """The delivered video's poster (WebP) and sprite sheet (JPEG)."""
    base = f"previews/{job.account_id}/{job.id}"
    return f"{base}/poster.webp", f"{base}/sprite.jpg"


def stored_keys(result: JobResult | None, params: JobParams) -> list[str]:
    """Every object stored for a job: its video, poster and sprite sheet, its input
    image, an edit's own copy of its source (what deleting it or its retention removes)."""
    keys = [result.key, result.poster_key, result.sprite_key] if result else []
    source = params.source_key if is_source_copy(params.source_key) else None
    return [k for k in (*keys, params.image_key, source) if k]


_SOURCES = "/sources/"


def is_source_copy(key: str | None) -> bool:
    """An edit's own copy of its source (never the source video itself, which belongs
    to its own job)."""
    return key is not None and key.startswith("inputs/") and _SOURCES in key


def source_copy_key(account_id: str, job_id: str) -> str:
    """An extend's or remix's own copy of its source video, taken at submit, so deleting
    or expiring the source later cannot take it from under the job."""
    return f"inputs/{account_id}{_SOURCES}{job_id}.mp4"


def upload_key(job: Job) -> str:
    """Where a provider writes this attempt's video when given an upload link."""
    return f"uploads/{job.id}-{job.attempt_no}.mp4"
