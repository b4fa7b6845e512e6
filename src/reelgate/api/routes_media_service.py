"""The ``media-video-from-text`` service, exactly as its seed describes it:

    POST /v1/proxy/media-video-from-text  -> 202 {"status": "accepted", "message", "job"}
    GET  /v2/jobs/{job_id}                -> {id, status, service_name, created_at,
                                              completed_at, result_data, units_consumed,
                                              token_cost}

Same engine, same jobs: a job created here is a native job too (routed to the
upstream video gateway models, 600 s deadline, $1.50 per second, failed jobs
not billed). Strict strings as the upstream's Pydantic model: ``"4s"``/``"8s"``,
``"512P"``/``"1080P"``; an integer duration is a 400.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from reelgate.api.access import check_available
from reelgate.api.auth import require_read, require_write, runtime
from reelgate.api.idempotency import Idempotency, idempotent
from reelgate.api.openapi import errors
from reelgate.api.schemas import Prompt, not_blank
from reelgate.api.serialize import error_to_wire, result_url
from reelgate.catalog.validate import Submission, validate_submission
from reelgate.engine.commands import NewJob, submit_job
from reelgate.errors import NotFound
from reelgate.job import Job, PublicStatus
from reelgate.netsafe import check_url
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.submit import StoredAnswer

__all__ = ["SERVICE", "job_document", "router"]

SERVICE = "media-video-from-text"
router = APIRouter(tags=["media-video-from-text"])


class MediaVideoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: Prompt
    model: Literal["veo (Audio)", "veo fast (Audio)"] = "veo (Audio)"
    resolution: Literal["512P", "1080P"] = "1080P"
    duration: Literal["4s", "8s"] = "4s"
    aspect_ratio: Literal["16:9", "9:16"] = "16:9"
    # reelgate's extension: the job's events POSTed there (the /v2/jobs document as data)
    webhook_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        return not_blank(value)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dollars(rt: Runtime, millicredits: int | None) -> float:
    """``token_cost`` in the seed's wire format: money (``6.0`` for 4 s at $1.50/s), made
    from the credits charged at the configured credit value, exactly, then a number."""
    return float(rt.settings.credit().amount(millicredits or 0))


_STATUS = {
    PublicStatus.QUEUED: "queued",
    PublicStatus.IN_PROGRESS: "processing",
    PublicStatus.COMPLETED: "completed",
    PublicStatus.FAILED: "failed",
    PublicStatus.CANCELED: "canceled",
}


async def job_document(rt: Runtime, job: Job) -> dict[str, Any]:
    status = job.status
    result = job.result
    url = await result_url(rt, job)
    resolution = job.params.resolution.upper()
    document: dict[str, Any] = {
        "id": job.id,
        "status": _STATUS[status],
        "service_name": job.source if job.source != "native" else "video",
        "created_at": _iso(job.created_at),
        "completed_at": _iso(job.completed_at) if status.is_final else None,
        "result_data": {
            "status": "success",
            "video_url": url,
            # the upstream's own report (the brief: result_data comes from the upstream);
            # what reelgate measured of its copy is in the native job's result
            "duration_seconds": float(
                (result.duration_seconds if result else None) or job.params.duration_seconds
            ),
            "model": job.delivered_by or job.model,
            "resolution": resolution,
            "aspect_ratio": job.params.aspect_ratio,
        }
        if status is PublicStatus.COMPLETED
        else None,
        **({"video_expired_at": _iso(job.expired_at)} if job.expired_at else {}),
        "units_consumed": float(job.units_consumed or 0),
        "token_cost": _dollars(rt, job.cost),
    }
    if status is PublicStatus.FAILED:
        document["error"] = error_to_wire(job.error)  # why it failed; token_cost 0: not billed
    return document


@router.post("/v1/proxy/media-video-from-text", status_code=202, responses=errors(402))
async def create(
    body: MediaVideoRequest,
    request: Request,
    key: KeyInfo = Depends(require_write),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    async def handler(idem: Idempotency | None) -> JSONResponse:
        seconds = int(body.duration.removesuffix("s"))
        checked = validate_submission(
            rt.catalog,
            Submission(
                model=body.model,
                duration_seconds=seconds,
                resolution=body.resolution.lower(),
                aspect_ratio=body.aspect_ratio,
                prompt=body.prompt,
            ),
            route_of=rt.providers.route_of,
        )
        await check_available(rt, key, checked.chain)
        if body.webhook_url:
            check_url(body.webhook_url, rt.settings.net_policy(), param="webhook_url")

        def answer(job: Job) -> dict[str, Any]:
            return {
                "status": "accepted",
                "message": "Job queued for processing",
                "job": {
                    "id": job.id,
                    "status": "queued",
                    "service": SERVICE,
                    "created_at": _iso(job.created_at),
                },
            }

        async def stored(job: Job) -> StoredAnswer:
            assert idem is not None
            return idem.answer(202, answer(job))

        job = await submit_job(
            rt,
            NewJob(
                account_id=key.account_id,
                key_id=key.key_id,
                chain=tuple(checked.chain),
                prompt=body.prompt,
                params=checked.params,
                deadline_seconds=checked.deadline_seconds or 600,
                source=SERVICE,
                webhook_url=body.webhook_url,
            ),
            answer=stored if idem is not None else None,
        )
        if idem is not None:
            idem.done = True
        return JSONResponse(answer(job), status_code=202)

    return await idempotent(request, rt, key.account_id, handler)


@router.get("/v2/jobs/{job_id}", responses=errors(404))
async def get_job_document(
    job_id: str, key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    async with rt.store.reading() as tx:
        job = await tx.get_job(job_id, key.account_id)
    if job is None:
        raise NotFound(f"No job {job_id!r}.", param="job_id")
    return await job_document(rt, job)
