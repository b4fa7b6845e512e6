"""Where a job's objects live in storage: its delivered video, and the object a
provider writes when reelgate hands it an upload link (``providers.base.UPLOADED``)."""

from __future__ import annotations

from reelgate.job import Job

__all__ = ["storage_key", "upload_key"]


def storage_key(job: Job) -> str:
    """The delivered video (reelgate's copy)."""
    return f"videos/{job.account_id}/{job.id}.mp4"


def upload_key(job: Job) -> str:
    """Where a provider writes this attempt's video when given an upload link."""
    return f"uploads/{job.id}-{job.attempt_no}.mp4"
